"""Runs a cell body or a script inside a workload's process.

``python -m workbench.runtime.cell RUN_DIR [--payload DIR] [--results-to-log]`` reads
``meta.json`` from the payload folder (default ``RUN_DIR/payload``; on Kubernetes the mounted
ConfigMap): the entry file, its arguments, and the names to bring back. Variables sent from
the kernel (``inputs.pkl``, cloudpickle) are placed in the namespace first; after success the
requested names are written to ``RUN_DIR/results.pkl`` or, with ``--results-to-log`` (a pod,
whose disk goes away with it), printed as one final marked line of base64 that the backend
takes out of the logs. The traceback of a failure is trimmed to the user's own frames.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import runpy
import signal
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

RESULTS = "results.pkl"
#: Exit code when a ``--get`` name is missing or cannot be pickled (Kubernetes: fail the Job at once).
MISSING_RESULT_EXIT = 3
#: Starts the line that carries ``--get`` results in a pod's log (never shown to users).
RESULTS_MARKER = "\x1eworkbench-results:"


def _user_traceback(exc: BaseException, entry: str) -> None:
    tb: TracebackType | None = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != entry:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb if tb is not None else exc.__traceback__)


def _stop(signum: int, _frame: object) -> None:
    # In a container this runner is process 1, which ignores SIGTERM unless it handles it:
    # turn it into SystemExit so `finally` blocks run and a cancel does not wait for SIGKILL.
    raise SystemExit(128 + signum)


def run(run_dir: Path, payload: Path | None = None, *, results_to_log: bool = False) -> int:
    signal.signal(signal.SIGTERM, _stop)
    payload = payload or run_dir / "payload"
    meta: dict[str, Any] = json.loads((payload / "meta.json").read_text())
    entry = str(payload / meta["entry"])
    inputs: dict[str, Any] = {}
    inputs_path = payload / "inputs.pkl"
    if inputs_path.exists():
        with inputs_path.open("rb") as fh:
            # written by the user who launched this workload; imports cloudpickle only when needed
            inputs = pickle.load(fh)  # noqa: S301
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
        return MISSING_RESULT_EXIT
    if not wanted:
        return 0
    results = {name: namespace[name] for name in wanted}
    try:
        try:
            blob = pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, AttributeError, TypeError):
            import cloudpickle  # lambdas, classes defined in the cell

            blob = cloudpickle.dumps(results)
    except Exception as exc:
        print(f"workbench: cannot bring back {','.join(wanted)}: {exc!r}", file=sys.stderr)
        return MISSING_RESULT_EXIT
    if results_to_log:
        sys.stdout.flush()
        sys.stdout.write(RESULTS_MARKER + base64.b64encode(blob).decode() + "\n")
        sys.stdout.flush()
        return 0
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / (RESULTS + ".tmp")
    tmp.write_bytes(blob)
    tmp.replace(run_dir / RESULTS)
    return 0


def main(argv: list[str]) -> int:
    run_dir, payload, to_log = Path(argv[0]), None, False
    rest = argv[1:]
    while rest:
        option = rest.pop(0)
        if option == "--payload" and rest:
            payload = Path(rest.pop(0))
        elif option == "--results-to-log":
            to_log = True
        else:
            print(f"workbench.runtime.cell: unknown argument {option!r}", file=sys.stderr)
            return 2
    return run(run_dir, payload, results_to_log=to_log)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
