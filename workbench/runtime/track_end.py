"""The end of a tracked workload's MLflow run: its status and its artifacts.

``python -m workbench.runtime.track_end DB ID`` is started by a local workload's supervisor
once it has recorded the end (:func:`run_after`); the service does the same for any workload
when it next sees a final record that was not ended yet (:mod:`workbench.tracking`). Either
way the end is done once: whoever ends a run first claims it in the record
(``info["mlflow"]["ending"]``), and marks it ended (``info["mlflow"]["ended"]``) afterwards.

The run's status mirrors the workload's (succeeded → FINISHED, failed → FAILED, cancelled →
KILLED) and the executed notebook, ``provenance.json`` and the log become artifacts of the
run. A tracking server that is down or erroring costs a few seconds at most (requests time
out quickly and are not retried) and one warning line; the workload's own record and run
directory are never changed by it.

This module imports only the standard library and the store; MLflow is imported when a run
is ended, in the process that ends it (never in the supervisor, which stays small).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..store import Store, Workload

#: The record's info key of a tracked workload: ``{"run_id", "experiment_id", "tracking_uri", "url"}``.
INFO_KEY = "mlflow"
#: MLflow's run status for each final workload status.
RUN_STATUS = {"succeeded": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}
#: Seconds a claim to end a run is honoured; a claimant that died is replaced after that.
CLAIM_SECONDS = 90.0
#: Seconds the supervisor waits for this process before it stops it.
END_PATIENCE = 60.0
#: Seconds one request to a tracking server may take while workbench itself talks to it.
REQUEST_TIMEOUT = 5
#: Files of a run directory logged as artifacts of the run (at the top of its artifacts).
ARTIFACTS = ("output.ipynb", "provenance.json", "provenance.sig.json", "logs/output.log")

_env_lock = threading.Lock()
_env_users = 0
_env_saved: dict[str, str | None] = {}


@contextlib.contextmanager
def short_requests(timeout: int | None = None) -> Iterator[None]:
    """MLflow's HTTP requests in this process give up after ``timeout`` (default
    :data:`REQUEST_TIMEOUT`) seconds, unretried.

    MLflow reads these settings from the environment at each request; what was there before
    comes back when the last thread inside this context leaves it.
    """
    global _env_users
    values = {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout or REQUEST_TIMEOUT),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    with _env_lock:
        if _env_users == 0:
            _env_saved.update({name: os.environ.get(name) for name in values})
            os.environ.update(values)
        _env_users += 1
    try:
        yield
    finally:
        with _env_lock:
            _env_users -= 1
            if _env_users == 0:
                for name, value in _env_saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
                _env_saved.clear()


def shown_uri(uri: str) -> str:
    """A tracking URI without the credentials it may carry (``https://user:token@host``)."""
    return re.sub(r"//[^/@]*@", "//", uri)


def reason(exc: BaseException) -> str:
    """What went wrong talking to MLflow, short: the OS error or the timeout when there is one."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    found = re.search(r"\[Errno -?\d+\] ([^'\"()\]]+)", text)
    if found:  # "Connection refused", "Name or service not known"…
        return found.group(1).strip().rstrip(".,")
    for words in ("Read timed out", "Connect timeout", "timed out"):
        if words in text:
            return words.lower()
    return text if len(text) <= 160 else text[:157] + "..."


def claimable(tracked: dict[str, Any]) -> bool:
    """Whether a run (``info["mlflow"]``) still needs ending and nobody is ending it now."""
    if not tracked.get("run_id") or tracked.get("ended"):
        return False
    return time.time() - float(tracked.get("ending") or 0) > CLAIM_SECONDS


def claim(store: Store, workload_id: str) -> bool:
    """Claim the end of a workload's run; True for the one process that may end it now."""
    return store.merge_info(workload_id, INFO_KEY, {"ending": time.time()}, when=claimable)


def artifacts(run_dir: Path) -> list[Path]:
    """The files of ``run_dir`` that the run keeps as artifacts (those that exist)."""
    return [run_dir / name for name in ARTIFACTS if (run_dir / name).is_file()]


def end_run(tracked: dict[str, Any], status: str, ended: float | None, files: Sequence[Path]) -> None:
    """Log ``files`` as artifacts of the run, then set its status and end time.

    Raises:
        Exception: whatever MLflow raises (an unreachable server, a deleted run).
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=str(tracked["tracking_uri"]))
    run_id = str(tracked["run_id"])
    for path in files:
        client.log_artifact(run_id, str(path))
    end_time = int(ended * 1000) if ended else None
    client.set_terminated(run_id, status=RUN_STATUS.get(status, "FAILED"), end_time=end_time)


def end_and_mark(store: Store, record: Workload, files: Sequence[Path]) -> str | None:
    """End a claimed run and mark it ended in the record; the reason when MLflow failed."""
    tracked = record.info.get(INFO_KEY) or {}
    problem = None
    try:
        with short_requests():
            end_run(tracked, record.status, record.ended, files)
    except Exception as exc:
        problem = reason(exc)
    mark: dict[str, Any] = {"ended": time.time(), "status": RUN_STATUS.get(record.status, "FAILED")}
    if problem:
        mark["end_error"] = problem
    with contextlib.suppress(Exception):  # the record may be gone (removed meanwhile)
        store.merge_info(record.id, INFO_KEY, mark)
    return problem


def warning(tracked: dict[str, Any], problem: str) -> str:
    """The one line said when a run's end could not be recorded in MLflow."""
    uri = shown_uri(str(tracked.get("tracking_uri")))
    return (
        f"workbench: warning: MLflow at {uri} unreachable ({problem}); the end of run "
        f"{tracked.get('run_id')} was not recorded there, metrics stay in provenance.json"
    )


def run_after(db_path: Path, workload_id: str) -> None:
    """Run ``python -m workbench.runtime.track_end DB ID`` and wait for it (at most
    :data:`END_PATIENCE` seconds): the supervisor's guard stops whatever outlives it."""
    with contextlib.suppress(OSError):
        proc = subprocess.Popen(
            [sys.executable, "-m", __name__, str(db_path), workload_id], stdin=subprocess.DEVNULL
        )
        try:
            proc.wait(timeout=END_PATIENCE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m workbench.runtime.track_end DB ID", file=sys.stderr)
        return 2
    from ..errors import WorkbenchError
    from ..store import Store

    store = Store(argv[0])
    try:
        record = store.get(argv[1])
        tracked = record.info.get(INFO_KEY) or {}
        if not record.done or not tracked.get("run_id") or tracked.get("ended"):
            return 0
        problem = end_and_mark(store, record, artifacts(Path(record.run_dir)))
    except WorkbenchError as exc:  # the record was removed meanwhile, the store is unreadable
        print(f"workbench: the MLflow run of {argv[1]} was not ended: {exc.one_line()}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if problem:
        print(warning(tracked, problem), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
