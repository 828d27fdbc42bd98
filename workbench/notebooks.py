"""Notebook runs at the service level: parameter typing, the payload, verification, sweeps.

Before a notebook is launched its ``parameters`` cell is read with papermill's inspection:
each given value is checked against the declared type (an annotation, else the type of the
default literal) and text from the command line (``-p lr 0.1``) is converted to it; a wrong
value is refused with a :class:`SpecError`, an undeclared name is a warning (an error with
``strict``). ``verify_run`` re-checks a finished run against its provenance manifest and, for a
signed run, its signature by this home's key.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import itertools
import json
import re
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import spec_limits as limits
from .backends.base import Payload
from .errors import SpecError
from .runtime import notebook as nbrun
from .runtime.notebook import skip_iri_format_checker as skip_iri_format_checker  # for the CLI
from .runtime.notebook import trusted_fingerprint as trusted_fingerprint
from .spec import NotebookSpec

if TYPE_CHECKING:
    from .service import Service
    from .store import Workload

EXECUTED, PROGRESS = nbrun.OUTPUT, nbrun.PROGRESS  # files of a local run directory the server reads
_TYPES: dict[str, type] = {"int": int, "float": float, "bool": bool, "str": str, "list": list, "dict": dict}


class UndeclaredParameterWarning(UserWarning):
    """A parameter the notebook's ``parameters`` cell does not declare (papermill injects it anyway)."""


def read_notebook(spec: NotebookSpec, cwd: str | None) -> tuple[Path, bytes]:
    """The notebook's resolved path and bytes.

    Raises:
        SpecError: it does not exist or cannot be read.
    """
    path = (Path(cwd or ".") / spec.notebook).resolve()
    try:
        return path, path.read_bytes()
    except OSError as exc:
        raise SpecError(
            f"cannot read notebook {spec.notebook!r}: {exc.strerror}",
            value=spec.notebook,
            hint="give the path of an existing .ipynb file",
        ) from None


def declared_parameters(data: bytes, kernel: str | None, where: str) -> dict[str, str | None]:
    """Declared parameter names and their type names (None when the type is not known).

    Remembered per notebook content and kernel, so a sweep inspects its notebook once.
    """
    return {name: known for name, known, *_ in inspected_parameters(data, kernel, where)}


Declared = tuple[str, str | None, str, str, str]
_NOTEBOOK_HINT = "give an .ipynb saved by Jupyter (nbformat 4)"


@functools.lru_cache(maxsize=16)
def inspected_parameters(data: bytes, kernel: str | None, where: str) -> tuple[Declared, ...]:
    """Each declared parameter: name, known type (or None), papermill's type name, default source, help."""
    import nbformat
    import papermill  # type: ignore[import-untyped]

    try:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        doc = json.loads(text := data.decode("utf-8"))
        parts = (doc.get("cells", []), doc.get("metadata", {})) if isinstance(doc, dict) else ()
        shape = "" if parts else f"a JSON {type(doc).__name__}"
        if parts and not (isinstance(parts[0], list) and all(isinstance(c, dict) for c in parts[0])):
            shape = "no list of cells"
        elif parts and not isinstance(parts[1], dict):
            shape = "metadata that is no object"
    except ValueError as exc:
        shape = f"no JSON text ({exc})"
    if shape:
        raise SpecError(f"{where} is not a notebook: it holds {shape}", value=where, hint=_NOTEBOOK_HINT)
    try:
        with warnings.catch_warnings():  # cells without ids: nbformat fills them in
            warnings.simplefilter("ignore")
            nb = nbformat.convert(nbformat.reader.reads(text), 4)  # type: ignore[no-untyped-call]
            if kernel:
                nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
            nbformat.validate(nb, relax_add_props=True)  # extra keys from other tools are harmless
    except Exception as exc:
        detail = limits.shorten(str(getattr(exc, "message", None) or exc).strip().splitlines()[0], 200)
        raise SpecError(
            f"{where} is not a valid notebook: {detail}", value=where, hint=_NOTEBOOK_HINT
        ) from None
    if not nb.metadata.get("kernelspec", {}).get("name"):
        raise SpecError(f"{where} names no kernel in its metadata", value=where, hint="pass --kernel python3")
    with tempfile.TemporaryDirectory(prefix="workbench-inspect-") as folder:
        path = Path(folder) / "notebook.ipynb"
        nbformat.write(nb, str(path))  # type: ignore[no-untyped-call]
        found: dict[str, Any] = papermill.inspect_notebook(str(path))
    result: list[Declared] = []
    for name, info in found.items():
        type_name = inferred = str(info.get("inferred_type_name") or "None")
        if type_name == "None":
            with contextlib.suppress(ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                type_name = type(ast.literal_eval(str(info.get("default")))).__name__
        type_name = type_name.lower().removeprefix("typing.")
        known = type_name if type_name in _TYPES else None
        result.append((name, known, inferred, str(info.get("default")), str(info.get("help") or "")))
    return tuple(result)


def _convert(name: str, value: Any, type_name: str) -> Any:
    import yaml

    target = _TYPES[type_name]
    converted = value
    if isinstance(value, str) and target is not str:
        try:
            converted = float(value) if target is float else yaml.safe_load(value)
        except (ValueError, yaml.YAMLError):
            converted = value
    if target is float and isinstance(converted, int) and not isinstance(converted, bool):
        converted = float(converted)
    bad = limits.non_finite(converted)
    if bad is not None:  # 1e400 reads as infinity, which JSON cannot hold
        raise SpecError(
            f"parameter {name!r}: {value!r} is not a finite number (it reads as {bad})",
            value=value,
            hint=f"give {name} a number within ±1.8e308",
        )
    ok = isinstance(converted, target) and not (target is int and isinstance(converted, bool))
    if not ok:
        raise SpecError(
            f"parameter {name!r} is declared {type_name} in the notebook; "
            f"{value!r} is not a valid {type_name}",
            value=value,
            hint=f"give {name} {'an' if type_name[0] in 'aeiou' else 'a'} {type_name} value",
        )
    return converted


def check_parameters(
    given: dict[str, Any], declared: dict[str, str | None], *, strict: bool, where: str
) -> dict[str, Any]:
    """``given`` converted to the declared types; undeclared names warn (or fail when strict)."""
    result: dict[str, Any] = {}
    for name, value in given.items():
        if name not in declared:
            text = f"parameter {name!r} is not declared in the parameters cell of {where}" + (
                f" (it declares {', '.join(sorted(declared))})" if declared else " (it has none)"
            )
            if strict:
                raise SpecError(text, value=name, hint="drop it, or run without --strict")
            warnings.warn(f"{text}; papermill injects it anyway", UndeclaredParameterWarning, stacklevel=5)
            result[name] = value
            continue
        type_name = declared[name]
        result[name] = value if type_name is None else _convert(name, value, type_name)
    return result


def notebook_payload(spec: NotebookSpec, *, session: str | None, cwd: str | None, home: Path) -> Payload:
    """The payload of a notebook run: its bytes and ``payload/notebook.json``.

    Raises:
        SpecError: a missing notebook, a parameter of the wrong type, an undeclared one with
            ``strict``; nothing has been created.
    """
    path, data = read_notebook(spec, cwd)
    declared = declared_parameters(data, spec.kernel, spec.notebook)
    parameters = check_parameters(dict(spec.parameters), declared, strict=spec.strict, where=spec.notebook)
    config = {
        "source": str(path),
        "source_dir": str(path.parent),
        "parameters": parameters,
        "kernel": spec.kernel,
        # the repository as it is when the snapshot is taken (a pod cannot see it)
        "git": _git_info(path.parent),
    }
    return Payload(cwd=cwd, session=session, extra={"notebook": data, "config": config})


_GIT_TTL = 5.0  # seconds a repository's state is reused, so a sweep asks git once
_git_seen: dict[Path, tuple[float, dict[str, Any] | None]] = {}


def _git_info(folder: Path) -> dict[str, Any] | None:
    now = time.monotonic()
    seen = _git_seen.get(folder)
    if seen is None or now - seen[0] > _GIT_TTL:
        seen = _git_seen[folder] = (now, nbrun.git_info(folder))
    return seen[1]


_SHA256 = re.compile(r"[0-9a-f]{64}")


def verify_run(location: str, home: Path, *, require_signature: bool = False) -> list[str]:
    """Every mismatch between a run directory (a path or fsspec URL) and its manifest (empty: all good).

    The input snapshot, the executed notebook and every file under ``outputs/`` are hashed
    again and compared with the manifest: a hash that is missing or null fails, and so does a
    file the manifest does not list. A run the manifest says was signed (``signed``; for a
    manifest older than that field, a run with a signature file) needs a valid signature by
    this home's own key (the only key trusted here; see :func:`~workbench.runtime.notebook.
    trusted_fingerprint`) whose fingerprint is the one the manifest records. With
    ``require_signature`` an unsigned run fails too: matching hashes alone prove that the
    files agree with the manifest, not who wrote them.
    """
    import fsspec

    fs, root = fsspec.core.url_to_fs(location)

    def read(rel: str) -> bytes:
        data: bytes = fs.cat_file(f"{root}/{rel}")
        return data

    def digest(path: str) -> str:
        sha = hashlib.sha256()
        with fs.open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                sha.update(block)
        return sha.hexdigest()

    try:
        raw_manifest = read(nbrun.PROVENANCE)
        manifest: Any = json.loads(raw_manifest)
    except (OSError, ValueError) as exc:
        return [f"{nbrun.PROVENANCE}: unreadable ({exc})"]
    if not isinstance(manifest, dict):
        return [f"{nbrun.PROVENANCE}: not a JSON object"]
    problems = _signature_problems(manifest, raw_manifest, fs, root, home, require_signature)
    for key, expected in (("input", nbrun.INPUT), ("output", nbrun.OUTPUT)):
        entry = manifest.get(key)
        recorded = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or entry.get("path") != expected:
            problems.append(f"{expected}: the manifest has no {key!r} entry for it")
            continue
        path = f"{root}/{expected}"
        if not (isinstance(recorded, str) and _SHA256.fullmatch(recorded)):
            problems.append(f"{expected}: the manifest records no sha256 for it ({recorded!r})")
        elif not fs.isfile(path):
            problems.append(f"{expected}: missing")
        elif digest(path) != recorded:
            problems.append(f"{expected}: sha256 differs from the manifest")
    recorded_outputs = manifest.get("outputs")
    if not isinstance(recorded_outputs, dict):
        problems.append(f"outputs: the manifest records no hashes of the output files ({recorded_outputs!r})")
        recorded_outputs = {}
    folder = f"{root}/outputs"
    found = fs.find(folder) if fs.isdir(folder) else []
    actual = {str(p)[len(folder) + 1 :]: digest(str(p)) for p in sorted(found)}
    for name in sorted(set(recorded_outputs) | set(actual)):
        value = recorded_outputs.get(name)
        if name not in actual:
            problems.append(f"outputs/{name}: missing")
        elif name not in recorded_outputs:
            problems.append(f"outputs/{name}: not in the manifest")  # an extra output file
        elif not (isinstance(value, str) and _SHA256.fullmatch(value)):
            problems.append(f"outputs/{name}: the manifest records no sha256 for it ({value!r})")
        elif actual[name] != value:
            problems.append(f"outputs/{name}: sha256 differs from the manifest")
    return problems


def _signature_problems(
    manifest: dict[str, Any], raw_manifest: bytes, fs: Any, root: str, home: Path, require_signature: bool
) -> list[str]:
    """What is wrong with a run's signature, given what its manifest says about it."""
    present = bool(fs.exists(f"{root}/{nbrun.SIGNATURE}"))
    signed = manifest.get("signed", present)  # a manifest from before `signed`: the file decides
    recorded_key = manifest.get("signing_key")
    if not isinstance(signed, bool):
        return [f"{nbrun.PROVENANCE}: 'signed' is {signed!r}, not true or false"]
    if not signed:
        if present:
            return [f"{nbrun.SIGNATURE}: present, but {nbrun.PROVENANCE} records the run as unsigned"]
        if require_signature:
            return [f"{nbrun.PROVENANCE}: the run is not signed (--require-signature); launch it with --sign"]
        return []
    if not present:
        return [
            f"{nbrun.SIGNATURE}: missing, but {nbrun.PROVENANCE} records the run as signed"
            + (f" by {recorded_key}" if recorded_key else "")
        ]
    problem = nbrun.check_signature(raw_manifest, fs.cat_file(f"{root}/{nbrun.SIGNATURE}"), home)
    if problem:
        return [problem]
    trusted = nbrun.trusted_fingerprint(home)
    if "signing_key" in manifest and recorded_key != trusted:  # absent only in older manifests
        return [
            f"{nbrun.PROVENANCE}: records the signing key {recorded_key!r}, not this home's key ({trusted})"
        ]
    return []


def is_signed(location: str) -> bool:
    """Whether the run directory at ``location`` (a path or URL) holds a signature (after a
    clean :func:`verify_run`: whether it is a signed run)."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(location)
    return bool(fs.exists(f"{root}/{nbrun.SIGNATURE}"))


def run_directory(workload: Workload, *, notebook_only: bool = False) -> str:
    """Where a notebook run's files are: its published location (``--output``), else its run dir.

    Raises:
        SpecError: a schedule (each of its runs has its own directory), a run directory on a volume
            inside the cluster (this machine cannot read it), with ``notebook_only`` another kind.
    """
    if notebook_only and workload.kind != "notebook":
        what = f"{workload.id} is a {workload.kind} workload, not a notebook run (with a manifest to verify)"
        raise SpecError(what, value=workload.id, hint="`workbench ls --kind notebook` lists them")
    if workload.spec.get("schedule"):
        base = workload.spec.get("output")
        raise SpecError(
            f"{workload.id} is a schedule; each of its runs has its own run directory under {base}",
            value=workload.id,
            hint=f"give one run's directory, e.g. `workbench verify {base}/{workload.id}-<minutes>`",
        )
    location = workload.info.get("location")  # recorded at launch by the backend
    if not (isinstance(location, str) and location):
        return workload.run_dir
    if workload.backend != "local" and "://" not in location:
        raise SpecError(
            f"the run directory of {workload.id} is {location} on a volume inside the cluster",
            value=location,
            hint="verify it from a pod that mounts the volume, or use --output with a URL both can reach",
        )
    return location


def sweep_grid(sweeps: list[str]) -> list[dict[str, str]]:
    """The grid of ``NAME=v1,v2`` sweeps, in order (values stay text; typing comes at launch)."""
    axes: list[tuple[str, list[str]]] = []
    for item in sweeps:
        name, sep, values = item.partition("=")
        choices = [v for v in values.split(",") if v != ""]
        if not sep or not name.isidentifier() or not choices:
            raise SpecError(
                f"--sweep {item!r} must be NAME=v1,v2", value=item, hint="e.g. --sweep lr=0.1,0.01"
            )
        if any(name == other for other, _ in axes):
            raise SpecError(f"--sweep {name} is given twice", value=name)
        axes.append((name, choices))
    names = [name for name, _ in axes]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(c for _, c in axes))]


def sweep_runs(raw: dict[str, Any], combos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One notebook spec per point of the grid (``NAME-i`` when the spec is named)."""
    base = dict(raw.get("parameters") or {})
    return [
        {**raw, "parameters": {**base, **combo}} | ({"name": f"{raw['name']}-{i}"} if raw.get("name") else {})
        for i, combo in enumerate(combos)
    ]


def rerun_fields(workload: Workload) -> tuple[dict[str, Any], str | None]:
    """Spec fields and launch cwd that repeat a notebook run from its snapshot, as a new workload."""
    if workload.kind != "notebook":
        raise SpecError(
            f"{workload.id} is a {workload.kind} workload; rerun repeats notebook runs",
            value=workload.id,
            hint="`workbench ls --kind notebook` lists them",
        )
    run_dir = Path(workload.run_dir)
    try:
        config = json.loads((run_dir / "payload" / "notebook.json").read_text())
        launch = json.loads((run_dir / "launch.json").read_text())
    except (OSError, ValueError) as exc:
        raise SpecError(
            f"cannot rerun {workload.id}: its run directory {run_dir} is incomplete ({exc})",
            value=workload.id,
        ) from None
    raw = {key: value for key, value in workload.spec.items() if key != "name"}
    raw.update(notebook=str(run_dir / nbrun.INPUT), parameters=config.get("parameters", {}))
    return raw, launch.get("cwd")


def run_sweep(
    service: Service,
    runs: list[dict[str, Any]],
    *,
    parallel: int,
    cwd: str | None,
    on_launch: Callable[[Workload], None] | None = None,
    on_start: Callable[[], None] | None = None,
) -> list[Workload]:
    """Launch every spec in ``runs`` with at most ``parallel`` running at once; the final records.

    Every run's parameters are checked before the first one starts, so a bad value in the grid
    creates nothing; ``on_start`` is called once the first run is created. Interrupting cancels
    the runs still going.
    """
    if parallel < 1:
        raise SpecError(f"--parallel {parallel} must be at least 1", value=parallel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndeclaredParameterWarning)
        for raw in runs:
            spec = service.resolve(raw)
            if isinstance(spec, NotebookSpec):
                notebook_payload(spec, session=None, cwd=cwd, home=service.settings.home)
    pending = list(runs)
    running: list[str] = []
    order: list[str] = []
    try:
        while pending or running:
            while pending and len(running) < parallel:
                workload = service.launch(pending.pop(0), cwd=cwd)
                if on_start is not None and not order:
                    on_start()
                running.append(workload.id)
                order.append(workload.id)
                if on_launch is not None:
                    on_launch(workload)
            time.sleep(0.05)
            running = [name for name in running if not service.get(name).done]
    except KeyboardInterrupt:
        for name in running:
            service.cancel(name)
        raise
    return [service.get(name) for name in order]


def run_metrics(workload: Workload) -> dict[str, Any]:
    """The last metrics a run recorded (from its manifest, else from metrics.jsonl)."""
    run_dir = Path(workload.run_dir)
    try:
        metrics = json.loads((run_dir / nbrun.PROVENANCE).read_text()).get("metrics")
    except (OSError, ValueError):
        metrics = None
    if isinstance(metrics, dict):
        return metrics
    return nbrun.last_metrics(run_dir / "outputs" / nbrun.METRICS_FILE)
