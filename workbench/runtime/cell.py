"""Runs a cell body or a script inside a workload's process.

``python -m workbench.runtime.cell RUN_DIR`` reads ``payload/meta.json``: the entry file,
its arguments, and the names to bring back. Variables sent from the kernel
(``payload/inputs.pkl``, cloudpickle) are placed in the namespace first; after success the
requested names are written to ``results.pkl``. The traceback of a failure is trimmed to
the user's own frames.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

RESULTS = "results.pkl"


def _user_traceback(exc: BaseException, entry: str) -> None:
    tb: TracebackType | None = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != entry:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb if tb is not None else exc.__traceback__)


def run(run_dir: Path) -> int:
    import cloudpickle

    meta: dict[str, Any] = json.loads((run_dir / "payload" / "meta.json").read_text())
    entry = str(run_dir / "payload" / meta["entry"])
    inputs: dict[str, Any] = {}
    inputs_path = run_dir / "payload" / "inputs.pkl"
    if inputs_path.exists():
        with inputs_path.open("rb") as fh:
            inputs = cloudpickle.load(fh)
    sys.argv = [meta.get("argv0") or entry, *meta.get("args", [])]
    if meta.get("cwd_on_path", True):
        sys.path.insert(0, os.getcwd())
    try:
        namespace = runpy.run_path(entry, init_globals=inputs, run_name="__main__")
    except SystemExit:
        raise
    except BaseException as exc:
        _user_traceback(exc, entry)
        return 1
    wanted: list[str] = meta.get("get", [])
    missing = [name for name in wanted if name not in namespace]
    if missing:
        print(
            f"workbench: --get {','.join(missing)}: not defined when the code finished; "
            "assign it in the cell or drop it from --get",
            file=sys.stderr,
        )
        return 3
    if wanted:
        tmp = run_dir / (RESULTS + ".tmp")
        try:
            with tmp.open("wb") as fh:
                cloudpickle.dump({name: namespace[name] for name in wanted}, fh)
        except Exception as exc:
            print(f"workbench: cannot bring back {wanted}: {exc!r}", file=sys.stderr)
            tmp.unlink(missing_ok=True)
            return 3
        tmp.replace(run_dir / RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1])))
