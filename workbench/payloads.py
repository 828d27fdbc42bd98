"""What a workload carries besides its spec: built at launch, read back for export."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .backends.base import Payload
from .errors import SpecError
from .runtime.results import new_key
from .spec import CodeSpec, CommonSpec, parse_spec
from .store import Workload


def code_payload(
    spec: CodeSpec, inputs: Mapping[str, Any], *, session: str | None, cwd: str | None, seal_results: bool
) -> Payload:
    """The payload of a cell or script: the code, the ``--send`` values pickled, and (with
    ``--get`` and ``seal_results``) a fresh key to seal the results with.

    Raises:
        SpecError: a ``--send`` name the kernel lacks or that cannot be pickled; a script that
            cannot be read.
    """
    missing = [name for name in spec.send if name not in inputs]
    if missing:
        raise SpecError(
            f"--send {','.join(missing)}: no such variable in the kernel",
            value=",".join(missing),
            hint="define it before the cell, or drop it from --send",
        )
    blob = None
    if spec.send:
        import cloudpickle

        values = {}
        for name in spec.send:
            try:
                cloudpickle.dumps(inputs[name])
            except Exception as exc:
                raise SpecError(
                    f"--send {name}: cannot be pickled ({type(exc).__name__}: {exc})",
                    value=name,
                    hint="send plain data (arrays, frames, dicts) or rebuild it inside the cell",
                ) from None
            values[name] = inputs[name]
        blob = cloudpickle.dumps(values)
    script = script_name = None
    if spec.script is not None:
        path = Path(cwd or ".") / spec.script
        try:
            script = path.read_bytes()
        except OSError as exc:
            raise SpecError(
                f"cannot read script {spec.script!r}: {exc.strerror}",
                value=spec.script,
                hint="give the path of an existing .py file",
            ) from None
        script_name = path.name
    return Payload(
        code=spec.code,
        script=script,
        script_name=script_name,
        inputs=blob,
        cwd=cwd,
        session=session,
        results_key=new_key() if spec.get and seal_results else None,
    )


def saved_launch(workload: Workload) -> tuple[CommonSpec, Payload]:
    """The spec and payload of ``workload``: its record and the payload kept in its run directory.

    Raises:
        SpecError: the payload is missing or unreadable.
    """
    folder = Path(workload.run_dir) / "payload"
    raw = dict(workload.spec)
    inputs_path = folder / "inputs.pkl"
    try:
        inputs = inputs_path.read_bytes() if inputs_path.exists() else None
        if raw.get("kind") == "notebook":  # the snapshot and the typed parameters
            config = json.loads((folder / "notebook.json").read_text())
            notebook = (Path(workload.run_dir) / "input.ipynb").read_bytes()
            payload = Payload(extra={"notebook": notebook, "config": config})
        elif raw.get("kind") not in ("pod", "train"):  # no code to carry (a Dask cluster)
            payload = Payload()
        elif raw.get("script"):
            script_name = Path(raw["script"]).name
            script = (folder / script_name).read_bytes()
            payload = Payload(script=script, script_name=script_name, inputs=inputs)
        else:
            raw["code"] = (folder / "cell.py").read_text()
            payload = Payload(code=raw["code"], inputs=inputs)
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise SpecError(
            f"cannot export {workload.id}: its payload is missing from {folder} ({why})",
            value=workload.id,
        ) from None
    return parse_spec(raw), payload
