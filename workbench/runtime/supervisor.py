"""The supervisor: runs one local workload detached and keeps its record true.

Started as ``python -m workbench.runtime.supervisor DB ID`` in a session of its own, it
forks once more so it is never the zombie child of the process that launched it (a
kernel may live on, or die, without affecting it). It reads ``launch.json`` from the
run directory, starts the command in a new process group with its output appended to
``logs/output.log``, and records pid, start, exit code, end and a one-line reason in the
store. It enforces the timeout and the memory limit (like a pod's OOM kill) and turns a
SIGTERM into a graceful stop of the whole process group (SIGTERM, grace, SIGKILL).

It imports only the standard library and the store, to stay within a few MB.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..private import WORKLOAD_UMASK
from ..store import CANCELLED, FAILED, PENDING, RUNNING, SUCCEEDED, Store
from . import FINAL_MESSAGE, procs
from .results import KEY_ENV

CHECK_EVERY = 0.25  # seconds between timeout / memory checks while the command runs


def last_error_line(log: Path, limit: int = 16384) -> str:
    """The last non-blank line of a log (usually ``SomeError: message``)."""
    try:
        with log.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - limit))
            tail = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _child_env(launch: dict[str, Any], home: Path, results_key: bytes | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(launch.get("env", {}))
    env.pop(KEY_ENV, None)
    if results_key is not None:  # from the store, never from a file in the run directory
        env[KEY_ENV] = results_key.hex()
    for ref in launch.get("secrets", []):
        path = home / "secrets" / ref["secret"] / ref["key"]
        try:
            env[ref["env"]] = path.read_text().rstrip("\n")
        except OSError as exc:
            raise RuntimeError(
                f"secret {ref['secret']}:{ref['key']} not found for {ref['env']}; "
                f"create {path.relative_to(home)} under WORKBENCH_HOME ({exc.strerror})"
            ) from None
    return env


class Supervisor:
    """Runs and watches one workload's command."""

    def __init__(self, store: Store, workload_id: str) -> None:
        self.store = store
        self.id = workload_id
        record = store.get(workload_id)
        self.run_dir = Path(record.run_dir)
        self.launch: dict[str, Any] = json.loads((self.run_dir / "launch.json").read_text())
        self.log_path = self.run_dir / "logs" / "output.log"
        self.stop_reason: str | None = None
        self._wake_r, self._wake_w = os.pipe()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.stop_reason = self.stop_reason or "cancel"
        os.write(self._wake_w, b"x")

    def _terminate(self, pgid: int, proc: subprocess.Popen[bytes]) -> None:
        procs.signal_group(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=float(self.launch.get("kill_grace", 5.0)))
        except subprocess.TimeoutExpired:
            procs.kill_group(pgid)
            procs.kill_descendants(os.getpid())
            proc.wait()

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        procs.become_subreaper()
        os.umask(WORKLOAD_UMASK)  # what the workload writes (logs, outputs) is private too
        self.store.update(self.id, supervisor_pid=os.getpid())
        home = self.store.path.parent
        try:
            env = _child_env(self.launch, home, self.store.results_key(self.id))
            with self.log_path.open("ab") as log:
                proc = subprocess.Popen(
                    self.launch["argv"],
                    cwd=self.launch.get("cwd") or None,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    process_group=0,
                )
        except (OSError, RuntimeError, KeyError) as exc:
            self.store.finish(self.id, FAILED, exit_code=None, message=f"could not start: {exc}")
            return 1
        pgid = proc.pid
        if not self.store.update(
            self.id, only_if=[PENDING], status=RUNNING, pid=proc.pid, started=time.time()
        ):
            procs.kill_group(pgid)  # cancelled before it started
            proc.wait()
            return 0
        code = self._watch(proc, pgid)
        procs.kill_group(pgid)  # like a pod: nothing outlives the main process,
        procs.kill_descendants(os.getpid())  # not even what left the group (torchrun's workers)
        self._record(code)
        return 0

    def _watch(self, proc: subprocess.Popen[bytes], pgid: int) -> int:
        timeout = self.launch.get("timeout")
        deadline = time.monotonic() + float(timeout) if timeout else None
        memory_limit = self.launch.get("memory_limit")
        poller = select.poll()
        pidfd = os.pidfd_open(proc.pid)
        poller.register(pidfd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        try:
            while True:
                code = proc.poll()
                if code is not None:
                    return code
                if self.stop_reason:
                    self._terminate(pgid, proc)
                    continue
                if deadline is not None and time.monotonic() >= deadline:
                    self.stop_reason = "timeout"
                    self._terminate(pgid, proc)
                    continue
                if memory_limit and procs.group_rss(pgid) > int(memory_limit):
                    self.stop_reason = "oom"
                    procs.kill_group(pgid)
                    proc.wait()
                    continue
                wait = CHECK_EVERY
                if deadline is not None:
                    wait = max(0.0, min(wait, deadline - time.monotonic()))
                poller.poll(wait * 1000 if (deadline is not None or memory_limit) else None)
        finally:
            os.close(pidfd)

    def _final_message(self) -> str:
        """The runtime's own one-line account (why Dask stopped, the failing rank or cell), if any."""
        final = self.run_dir / FINAL_MESSAGE
        return final.read_text().strip()[:300] if final.exists() else ""

    def _record(self, code: int) -> None:
        if self.stop_reason == "cancel" or self.store.get(self.id).cancel_requested:
            self.store.finish(self.id, CANCELLED, exit_code=code, message="cancelled")
        elif self.stop_reason == "timeout":
            message = f"timed out after {self.launch.get('timeout')}s and was stopped"
            self.store.finish(self.id, FAILED, exit_code=code, message=message)
        elif self.stop_reason == "oom":
            message = f"OOMKilled: used more than the memory limit ({self.launch.get('memory_label')})"
            self.store.finish(self.id, FAILED, exit_code=code, message=message)
        elif code == 0:
            self.store.finish(self.id, SUCCEEDED, exit_code=0, message=self._final_message())
        else:
            reason = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
            detail = self._final_message() or last_error_line(self.log_path)
            message = f"{reason}: {detail}" if detail else reason
            self.store.finish(self.id, FAILED, exit_code=code, message=message)


def main(argv: list[str]) -> int:
    db_path, workload_id = argv
    if os.fork() > 0:  # detach: the launcher reaps this parent at once
        os._exit(0)
    store = Store(db_path)
    try:
        return Supervisor(store, workload_id).run()
    except BaseException as exc:
        store.finish(workload_id, FAILED, exit_code=None, message=f"supervisor error: {exc!r}")
        raise


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
