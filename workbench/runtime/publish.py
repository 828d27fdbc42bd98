"""A run's files at its run location: a path or an fsspec URL (``--output``).

The notebook runner executes into its own run directory (a local folder, or the pod's
emptyDir) and a :class:`Publisher` copies the files to ``OUTPUT/NAME``: the executed notebook
and the log while cells run, everything at the end, the manifest last. A ``pod`` or ``train``
workload's runner publishes what the code wrote to ``WORKBENCH_OUTPUT_DIR`` to
``WORKBENCH_OUTPUT_LOCATION`` (``OUTPUT/NAME``) when the code ends (:func:`publish_outputs`).
"""

from __future__ import annotations

import io
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from . import OUTPUT_LOCATION_ENV

INPUT = "input.ipynb"
OUTPUT = "output.ipynb"
PROVENANCE = "provenance.json"
SIGNATURE = "provenance.sig.json"


def run_location(base: str, name: str) -> str:
    """Where the run ``name`` publishes its run directory under ``--output`` ``base``."""
    return base.rstrip("/") + "/" + name


#: what a run directory holds, relative to it, in publishing order (the manifest last)
PUBLISHED = (INPUT, OUTPUT, "logs/output.log", PROVENANCE, SIGNATURE)


class Publisher:
    """Copies a run's files to its run location (a path or an fsspec URL) as they change.

    The executed notebook and the log are copied every ``period`` seconds while the
    notebook runs (so a crash, or a pod that goes away, leaves what ran), everything
    once more at the end, the manifest last.
    """

    def __init__(self, location: str, run_dir: Path, period: float = 1.0) -> None:
        import fsspec

        self.location = location
        self.run_dir = run_dir
        self.fs, self.root = fsspec.core.url_to_fs(location)
        self.fs.makedirs(self.root, exist_ok=True)
        self._sent: dict[str, tuple[float, int]] = {}
        self._period = period
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def read(self, rel: str) -> bytes:
        data: bytes = self.fs.cat_file(f"{self.root}/{rel}")
        return data

    def put(self, rel: str) -> None:
        local = self.run_dir / rel
        try:
            stat = local.stat()
        except FileNotFoundError:
            return
        key = (stat.st_mtime, stat.st_size)
        if self._sent.get(rel) == key:
            return
        target = f"{self.root}/{rel}"
        parent = target.rsplit("/", 1)[0]
        if "/" in rel:
            self.fs.makedirs(parent, exist_ok=True)
        self.fs.put_file(str(local), target)
        self._sent[rel] = key

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self._period):
                try:
                    self.put(OUTPUT)
                    self.put("logs/output.log")
                except Exception as exc:  # reported by finish()
                    self._error = exc

        self._thread = threading.Thread(target=loop, name="workbench-publish", daemon=True)
        self._thread.start()

    def finish(self, output_dir: Path) -> None:
        """Stop the copying loop and copy everything; raises what the loop or the copies met."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for path in sorted(output_dir.rglob("*")) if output_dir.is_dir() else []:
            if path.is_file():
                rel = "outputs/" + path.relative_to(output_dir).as_posix()
                target = self.run_dir / rel
                if target != path:  # WORKBENCH_OUTPUT_DIR elsewhere than RUN_DIR/outputs
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target)
                self.put(rel)
        for rel in PUBLISHED:
            self.put(rel)


def publish_tree(folder: Path, location: str) -> int:
    """Copy every file under ``folder`` to ``location`` (a path or an fsspec URL), keeping
    their relative paths; how many were copied."""
    files = sorted(path for path in folder.rglob("*") if path.is_file()) if folder.is_dir() else []
    publisher = Publisher(location, folder)
    for path in files:
        publisher.put(path.relative_to(folder).as_posix())
    return len(files)


def publish_outputs() -> str | None:
    """Publish ``WORKBENCH_OUTPUT_DIR`` to ``WORKBENCH_OUTPUT_LOCATION`` when that is set.

    Returns:
        None when done (or nothing to do), else what went wrong in one line.
    """
    location = os.environ.get(OUTPUT_LOCATION_ENV)
    folder = os.environ.get("WORKBENCH_OUTPUT_DIR")
    if not location or not folder:
        return None
    try:
        publish_tree(Path(folder), location)
    except Exception as exc:  # any filesystem's error: said in one line, the run fails
        return f"the outputs could not be published to {location}: {type(exc).__name__}: {exc}"
    return None


class Tee(io.TextIOBase):
    """Writes to the process's stream and to the run's log file (in a pod, where no
    supervisor keeps ``logs/output.log``)."""

    def __init__(self, stream: Any, log: Any) -> None:
        self._stream, self._log = stream, log

    def write(self, text: str) -> int:
        self._stream.write(text)
        self._log.write(text)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()
        self._log.flush()
