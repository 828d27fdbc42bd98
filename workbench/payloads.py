"""What a workload carries besides its spec: built at launch, read back for export."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .backends.base import Payload
from .errors import SpecError
from .runtime.results import new_key
from .sending import pickled_inputs
from .spec import CodeSpec, CommonSpec, RevisionChange, parse_spec
from .store import Workload


def code_payload(
    spec: CodeSpec,
    inputs: Mapping[str, Any],
    *,
    session: str | None,
    cwd: str | None,
    seal_results: bool,
    pickled: bytes | None = None,
) -> Payload:
    """The payload of a cell or script: the code, the ``--send`` values pickled (or ``pickled``,
    what :func:`~workbench.sending.pickled_inputs` made of them elsewhere), and (with
    ``--get`` and ``seal_results``) a fresh key to seal the results with.

    Raises:
        SpecError: a ``--send`` name the kernel lacks or that cannot be pickled; a script that
            cannot be read.
    """
    blob = pickled if pickled is not None else pickled_inputs(spec.send, inputs)
    script, script_name = read_script(spec.script, cwd)
    if getattr(spec, "kind", None) == "serve":
        check_model(spec.code, script, spec.script)
    return Payload(
        code=spec.code,
        script=script,
        script_name=script_name,
        inputs=blob,
        cwd=cwd,
        session=session,
        results_key=new_key() if spec.get and seal_results else None,
    )


def read_script(script: str | None, cwd: str | None) -> tuple[bytes | None, str | None]:
    """The bytes and file name of ``script`` (relative to ``cwd``), or (None, None)."""
    if script is None:
        return None, None
    path = Path(cwd or ".") / script
    try:
        return path.read_bytes(), path.name
    except OSError as exc:
        raise SpecError(
            f"cannot read script {script!r}: {exc.strerror}",
            value=script,
            hint="give the path of an existing .py file",
        ) from None


def check_model(code: str | None, script: bytes | None, script_path: str | None) -> None:
    """A served cell or file must define a model (checked without running it).

    Raises:
        SpecError: it defines neither a ``kserve.Model`` subclass nor ``predict(inputs)``.
    """
    from .serve_check import model_problem

    source = code if code is not None else (script or b"").decode("utf-8", "replace")
    where = script_path or "the cell"
    problem = model_problem(source, where)
    if problem:
        raise SpecError(
            problem,
            value=where,
            hint="define `class MyModel(kserve.Model)` with load() and predict(), or `def predict(inputs)`",
        )


def change_payload(change: RevisionChange, inputs: Mapping[str, Any], *, cwd: str | None) -> Payload:
    """The payload of a rollout: the new code (if any) with its ``--send`` values."""
    script, script_name = read_script(change.script, cwd)
    if change.code is not None or script is not None:
        check_model(change.code, script, change.script)
    return Payload(
        code=change.code,
        script=script,
        script_name=script_name,
        inputs=pickled_inputs(change.send, inputs),
        cwd=cwd,
    )


def _current_folder(run_dir: Path) -> Path:
    """``payload/``, or for a local endpoint the folder of the revision with most traffic
    (``desired.json``: see backends/local/serve.py)."""
    try:
        desired = json.loads((run_dir / "desired.json").read_text())
        current = max(desired["revisions"], key=lambda r: int(r["traffic"]))
        return run_dir / str(current["payload"])
    except (OSError, ValueError, KeyError, TypeError):
        return run_dir / "payload"


def stored_code(workload: Workload) -> str | None:
    """The cell code a workload was launched with (kept in its payload, not in its record; an
    endpoint's current revision's); None when it has none or it cannot be read."""
    try:
        return (_current_folder(Path(workload.run_dir)) / "cell.py").read_text()
    except (OSError, UnicodeDecodeError):
        return None


def launch_cwd(workload: Workload) -> str | None:
    """The working directory the workload was launched from (its ``launch.json``), when recorded."""
    try:
        launch = json.loads((Path(workload.run_dir) / "launch.json").read_text())
    except (OSError, ValueError):
        return None
    cwd = launch.get("cwd") if isinstance(launch, dict) else None
    return cwd if isinstance(cwd, str) and cwd else None


def saved_launch(workload: Workload) -> tuple[CommonSpec, Payload]:
    """The spec and payload of ``workload``: its record and the payload kept in its run directory.

    Raises:
        SpecError: the payload is missing or unreadable.
    """
    folder = _current_folder(Path(workload.run_dir))
    raw = dict(workload.spec)
    inputs_path = folder / "inputs.pkl"
    try:
        inputs = inputs_path.read_bytes() if inputs_path.exists() else None
        if raw.get("kind") == "notebook":  # the snapshot and the typed parameters
            config = json.loads((folder / "notebook.json").read_text())
            notebook = (Path(workload.run_dir) / "input.ipynb").read_bytes()
            payload = Payload(extra={"notebook": notebook, "config": config})
        elif raw.get("kind") not in ("pod", "train", "serve"):  # no code to carry (a Dask cluster)
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
