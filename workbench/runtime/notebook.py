"""Runs a notebook with papermill inside a workload's process and writes its provenance.

``python -m workbench.runtime.notebook RUN_DIR`` reads ``payload/notebook.json`` (parameters,
kernel, where the notebook came from), executes the snapshot ``RUN_DIR/input.ipynb`` into
``RUN_DIR/output.ipynb`` (saved after every cell, so a crash keeps what ran) in the launch
working directory, with ``WORKBENCH_OUTPUT_DIR`` for the files it writes, and leaves
``RUN_DIR/provenance.json``: input and output hashes, parameters, kernel, image, Python and
package versions, the notebook repository's git commit, times, status, the failing cell and
the sha256 of every output file. While it runs, ``RUN_DIR/progress.json`` says which cell of
how many is executing (papermill's engine, subclassed to note each cell's start). With
``WORKBENCH_SIGN_PROVENANCE=1`` the manifest is signed with the Ed25519 key under
``WORKBENCH_HOME/keys`` (``provenance.sig.json``). Whether the run is signed, and the
fingerprint of the key, are decided when the run starts (the key is loaded then, before any
cell runs) and recorded in the manifest (``signed``, ``signing_key``), so a
deleted signature cannot pass for an unsigned run.

papermill and cryptography are imported where they are used; the rest is the standard library.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from . import FINAL_MESSAGE
from .publish import INPUT, OUTPUT, PROVENANCE, SIGNATURE, Publisher, Tee, run_location
from .signing import (
    check_signature,
    ensure_key,
    fingerprint,
    load_signing_key,
    public_fingerprint,
    sign_manifest,
    trusted_fingerprint,
)

__all__ = [
    "INPUT",
    "METRICS_FILE",
    "OUTPUT",
    "PROGRESS",
    "PROVENANCE",
    "SIGNATURE",
    "SIGN_ENV",
    "check_signature",
    "ensure_key",
    "fingerprint",
    "hash_tree",
    "last_metrics",
    "main",
    "run",
    "run_location",
    "sha256_file",
    "sign_manifest",
    "skip_iri_format_checker",
    "trusted_fingerprint",
]

METRICS_FILE = "metrics.jsonl"
#: which cell of how many is executing: ``{"done", "total", "label"}``, rewritten as each cell starts
PROGRESS = "progress.json"
SIGN_ENV = "WORKBENCH_SIGN_PROVENANCE"
PACKAGES = ("papermill", "nbformat", "nbclient", "ipykernel", "jupyter_client", "numpy", "pandas", "torch")


def skip_iri_format_checker() -> None:
    """Leave out jsonschema's optional ``iri`` format checker in this process.

    jsonschema registers it when ``rfc3987_syntax`` imports, and that module builds a parser
    grammar at import: ~0.9 s of papermill's ~1.3 s import here. nbformat's schemas use no
    ``iri`` format, so a process that only inspects and runs notebooks does not need it.
    Called by the notebook runtime and the CLI, never inside a user's kernel or the server.
    """
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_tree(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, by POSIX path relative to it."""
    if not folder.is_dir():
        return {}
    return {
        path.relative_to(folder).as_posix(): sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def package_versions() -> dict[str, str | None]:
    """Installed versions (from package metadata; nothing is imported)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_info(folder: Path) -> dict[str, Any] | None:
    """Commit and dirty flag of the git repository holding ``folder`` (None when there is none)."""
    git = shutil.which("git")
    if git is None or not folder.is_dir():
        return None
    try:
        head = subprocess.run(
            [git, "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=20
        )
        if head.returncode != 0:
            return None
        status = subprocess.run(
            [git, "-C", str(folder), "status", "--porcelain"], capture_output=True, text=True, timeout=20
        )
        top = subprocess.run(
            [git, "-C", str(folder), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {
        "commit": head.stdout.strip(),
        "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None,
        "repository": top.stdout.strip() or None,
    }


def last_metrics(path: Path) -> dict[str, Any]:
    """The last value of every metric in a ``metrics.jsonl`` (empty when there is none)."""
    result: dict[str, Any] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return result
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "name" in record:
            result[str(record["name"])] = record.get("value")
    return result


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# -- running -------------------------------------------------------------------------------
def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # cancel: papermill shuts the kernel down on the way out


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)


def _fail(run_dir: Path, message: str) -> int:
    (run_dir / FINAL_MESSAGE).write_text(message[:300] + "\n")
    print(f"workbench: {message}", file=sys.stderr, flush=True)
    return 1


def run(run_dir: Path) -> int:
    signal.signal(signal.SIGTERM, _stop)
    config: dict[str, Any] = json.loads((run_dir / "payload" / "notebook.json").read_text())
    workload = os.environ.get("WORKBENCH_WORKLOAD_ID") or run_dir.name
    log_path = run_dir / "logs" / "output.log"
    if not log_path.exists():  # in a pod: keep a copy of what is printed for the run directory
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = log_path.open("a", encoding="utf-8", buffering=1)
        sys.stdout, sys.stderr = Tee(sys.stdout, log), Tee(sys.stderr, log)
    publisher: Publisher | None = None
    # in a pod the base comes as an env value: the kubelet maps mount paths in env, not in files
    base = os.environ.get("WORKBENCH_NOTEBOOK_OUTPUT") or config.get("output")
    if base:
        location = run_location(str(base), os.environ.get("WORKBENCH_JOB_NAME") or workload)
        try:
            publisher = Publisher(location, run_dir)
        except Exception as exc:
            return _fail(run_dir, f"cannot write the run directory {location}: {type(exc).__name__}: {exc}")
    input_path = run_dir / INPUT
    if not input_path.exists():  # in a pod: from the payload ConfigMap, else from the run location
        staged = run_dir / "payload" / INPUT
        try:
            if staged.exists():
                input_path.write_bytes(staged.read_bytes())
            else:
                import fsspec

                source = run_location(str(base), workload) + "/" + INPUT
                with fsspec.open(source, "rb") as fh:
                    input_path.write_bytes(fh.read())
        except Exception as exc:
            return _fail(run_dir, f"cannot read the input notebook: {type(exc).__name__}: {exc}")
    signing_key = None
    if os.environ.get(SIGN_ENV) == "1":  # loaded before any cell runs: what the manifest records
        try:
            signing_key = load_signing_key(Path(os.environ["WORKBENCH_HOME"]))
        except Exception as exc:
            return _fail(run_dir, f"--sign: cannot load the signing key: {type(exc).__name__}: {exc}")
    code = _execute(run_dir, config, workload, publisher, signing_key)
    if publisher is not None:
        try:
            publisher.finish(Path(os.environ["WORKBENCH_OUTPUT_DIR"]))
        except Exception as exc:
            return _fail(
                run_dir,
                f"the run ended but copying it to {publisher.location} failed: {type(exc).__name__}: {exc}",
            )
        print(f"workbench: run directory {publisher.location}", flush=True)
    return code


def _execute(
    run_dir: Path, config: dict[str, Any], workload: str, publisher: Publisher | None, signing_key: Any = None
) -> int:
    parameters: dict[str, Any] = config.get("parameters", {})
    output_dir = Path(os.environ.get("WORKBENCH_OUTPUT_DIR") or run_dir / "outputs")
    output_dir.mkdir(parents=True, exist_ok=True)
    os.environ["WORKBENCH_OUTPUT_DIR"] = str(output_dir)
    source_dir = Path(config.get("source_dir") or os.getcwd())
    input_path, output_path = run_dir / INPUT, run_dir / OUTPUT
    signer = public_fingerprint(signing_key) if signing_key is not None else None
    manifest: dict[str, Any] = {
        "version": 1,
        "workload": workload,
        "run_directory": publisher.location if publisher else str(run_dir),
        "input": {"path": INPUT, "source": config.get("source"), "sha256": sha256_file(input_path)},
        "parameters": parameters,
        "kernel": config.get("kernel"),
        "image": os.environ.get("WORKBENCH_IMAGE") or None,
        "image_digest": os.environ.get("WORKBENCH_IMAGE_DIGEST") or None,
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation()},
        "packages": package_versions(),
        "git": config["git"] if "git" in config else git_info(source_dir),
        "cwd": os.getcwd(),
        "started": _now(),
        "ended": None,
        "status": "running",
        "error": None,
        "signed": signing_key is not None,  # decided at launch: a run without it cannot pass as signed
        "signing_key": signer,  # the fingerprint of the key that signs it (None: unsigned)
    }
    if os.environ.get("MLFLOW_RUN_ID"):  # a tracked run: its MLflow run (see workbench.tracking)
        manifest["mlflow_run_id"] = os.environ["MLFLOW_RUN_ID"]
    print(f"workbench: executing {config.get('source')} with parameters {json.dumps(parameters)}", flush=True)
    if publisher is not None:
        publisher.put(INPUT)
        publisher.start()
    status, code, message = "succeeded", 0, ""
    try:
        import papermill  # type: ignore[import-untyped]
        from papermill.exceptions import PapermillExecutionError  # type: ignore[import-untyped]

        kernel_name = config.get("kernel") or _kernel_of(input_path)
        try:
            with _local_kernel(kernel_name) as km:
                papermill.execute_notebook(
                    str(input_path),
                    str(output_path),
                    engine_name=_progress_engine(run_dir),
                    parameters=parameters,
                    kernel_name=kernel_name,
                    request_save_on_cell_execute=True,
                    progress_bar=False,
                    stdout_file=sys.stdout,
                    stderr_file=sys.stderr,
                    cwd=os.getcwd(),
                    km=km,
                )
        except PapermillExecutionError as exc:
            status, code = "failed", 1
            manifest["error"] = {
                "cell_index": exc.cell_index,
                "execution_count": exc.exec_count,
                "ename": exc.ename,
                "evalue": exc.evalue,
            }
            message = f"cell {exc.cell_index} failed: {exc.ename}: {exc.evalue}"
    except SystemExit as stop:
        status, code, message = "cancelled", stop.code if isinstance(stop.code, int) else 1, "cancelled"
    except KeyboardInterrupt:  # SIGINT, as Ctrl-C stops the papermill CLI: what ran is saved
        status, code, message = "failed", 1, "interrupted (SIGINT) while executing"
        manifest["error"] = {"cell_index": None, "execution_count": None, "ename": "KeyboardInterrupt",
                             "evalue": "interrupted"}  # fmt: skip
    except Exception as exc:  # the kernel died (a crash, an OOM kill), or papermill could not start
        status, code = "failed", 1
        cell = _last_started_cell(output_path)
        manifest["error"] = {"cell_index": cell, "execution_count": None, "ename": type(exc).__name__,
                             "evalue": str(exc)}  # fmt: skip
        where = f"cell {cell} failed" if cell is not None else "papermill could not run the notebook"
        message = f"{where}: {type(exc).__name__}: {exc}"
    manifest.update(status=status, ended=_now())
    if manifest["kernel"] is None and output_path.exists():
        manifest["kernel"] = _kernel_of(output_path)
    executed = sha256_file(output_path) if output_path.exists() else None
    manifest["output"] = {"path": OUTPUT, "sha256": executed}
    manifest["outputs"] = hash_tree(output_dir)
    manifest["metrics"] = last_metrics(output_dir / METRICS_FILE)
    _write_json(run_dir / PROVENANCE, manifest)
    if signing_key is not None:
        sign_manifest(run_dir, Path(os.environ["WORKBENCH_HOME"]), key=signing_key)
    if message:
        (run_dir / FINAL_MESSAGE).write_text(message[:300] + "\n")
        print(f"workbench: {message}", file=sys.stderr, flush=True)
    print(f"workbench: executed notebook {output_path}", flush=True)
    return code


def write_progress(run_dir: Path, index: int, total: int) -> None:
    """Record that cell ``index`` (0-based) of ``total`` is executing (an atomic rename; never fails
    the run)."""
    data = {"done": index, "total": total, "label": f"cell {index + 1} of {total}"}
    tmp = run_dir / f".{PROGRESS}.tmp"
    with contextlib.suppress(OSError):
        tmp.write_text(json.dumps(data))
        tmp.replace(run_dir / PROGRESS)


def _progress_engine(run_dir: Path) -> str:
    """The name of a papermill engine that runs as the default one and records in ``run_dir`` which
    cell is executing (:data:`PROGRESS`) each time papermill starts one."""
    from papermill.engines import NBClientEngine, papermill_engines  # type: ignore[import-untyped]

    class ProgressEngine(NBClientEngine):  # type: ignore[misc]
        @classmethod
        def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
            total = len(nb_man.nb.cells)
            start = nb_man.cell_start

            def cell_start(cell: Any, cell_index: int | None = None, **more: Any) -> Any:
                if cell_index is not None:
                    write_progress(run_dir, cell_index, total)
                return start(cell, cell_index, **more)

            nb_man.cell_start = cell_start
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    papermill_engines.register("workbench", ProgressEngine)
    return "workbench"


@contextlib.contextmanager
def _local_kernel(kernel_name: str | None) -> Iterator[Any]:
    """A kernel manager whose kernel talks over Unix sockets in a private folder.

    With TCP, jupyter_client picks free ports before the kernel binds them, so kernels
    starting at once in parallel runs can race for a port; IPC sockets have no such race
    (and nothing listens on the network). The folder is short-lived and short-named: socket
    paths are limited to about 100 bytes.
    """
    from jupyter_client.manager import AsyncKernelManager

    folder = tempfile.mkdtemp(prefix="wb-kernel-")
    try:
        yield AsyncKernelManager(
            kernel_name=kernel_name or "python3", transport="ipc", ip=os.path.join(folder, "k")
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _last_started_cell(path: Path) -> int | None:
    """The index of the last cell papermill started, from the executed notebook's metadata."""
    try:
        cells = json.loads(path.read_text())["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    marks = [(c.get("metadata", {}).get("papermill") or {}).get("start_time") for c in cells]
    started = [index for index, mark in enumerate(marks) if mark]
    return started[-1] if started else None


def _kernel_of(path: Path) -> str | None:
    try:
        name = json.loads(path.read_text())["metadata"]["kernelspec"]["name"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(name)


def main(argv: list[str]) -> int:
    skip_iri_format_checker()
    if len(argv) != 1:
        print("usage: python -m workbench.runtime.notebook RUN_DIR", file=sys.stderr)
        return 2
    return run(Path(argv[0]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
