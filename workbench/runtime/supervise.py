"""The supervisor proper: runs one local workload and keeps its record true.

Forked by the guard (:mod:`.guard`, started as ``python -m workbench.runtime.supervisor DB
ID``), it reads ``launch.json`` from the run directory, starts the command in a new process
group (and in the workload's cgroup, where there is one) with its output appended to
``logs/output.log``, and records pid, start, exit code, end and a one-line reason in the
store. It enforces the timeout and the memory limit (like a pod's OOM kill) and turns a
SIGTERM into a graceful stop of the whole process group (SIGTERM, grace, SIGKILL). While the
workload runs, a thread samples its resource usage into the store (:mod:`.usage`).

It survives failing writes: when the disk fills up (ENOSPC from the store, say, because the
workload filled the disk holding its run directory) it gives back the room it set aside at
start, retries, and names the full disk in the record. An outcome it still cannot write goes
to the guard, which keeps trying. It imports only the standard library and the core, to stay
within a few MB.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from ..errors import NotFound
from ..private import WORKLOAD_UMASK
from ..store import CANCELLED, FAILED, PENDING, RUNNING, SUCCEEDED, Store
from . import FINAL_MESSAGE, cgroup, disk, forked, gate, procs, track_end, usage
from .guard import Report
from .results import KEY_ENV

CHECK_EVERY = 0.25  # seconds between timeout / memory checks while the command runs
#: Seconds a store write is retried while the disk is full, before the guard takes over.
WRITE_PATIENCE = 20.0
#: The file in the run directory that keeps room for the final write (see :mod:`.disk`).
RESERVE_FILE = ".reserve"
#: The supervisor's exit status when it could not write the outcome (the guard then does).
UNRECORDED = 3
#: The workload's first process: started by exec, or a pod's runner forked (:mod:`.forked`).
Child = subprocess.Popen[bytes] | forked.Forked


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


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class Supervisor:
    """Runs and watches one workload's command.

    Args:
        store: the shared store.
        workload_id: the workload.
        group: its cgroup folder, made by the guard; None where the machine allows none.
        report_fd: the pipe to the guard (the pgid, the reserve, an unwritten outcome).
    """

    def __init__(self, store: Store, workload_id: str, group: str | None = None, report_fd: int = -1) -> None:
        self.store = store
        self.id = workload_id
        self.group = group
        self.report_fd = report_fd
        record = store.get(workload_id)
        self.run_dir = Path(record.run_dir)
        self.granted = bool(record.gpus)
        self.tracked = bool((record.info.get(track_end.INFO_KEY) or {}).get("run_id"))  # an MLflow run
        self.launch: dict[str, Any] = json.loads((self.run_dir / "launch.json").read_text())
        self.log_path = self.run_dir / "logs" / "output.log"
        self.stop_reason: str | None = None
        self.disk_full = False  # a write of ours failed for want of space
        self._tell("run_dir", self.run_dir)
        self.reserve = disk.Reserve(str(self.run_dir / RESERVE_FILE))
        if self.reserve.path:
            self._tell("reserve", self.reserve.path)
        self._wake_r, self._wake_w = os.pipe()

    def _tell(self, key: str, value: object) -> None:
        """A line to the guard (it reads them once this process has ended)."""
        with contextlib.suppress(OSError):
            os.write(self.report_fd, Report.line(key, value))

    def _write(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``store.<method>(…)``, retried on a fresh connection while the disk is full."""
        deadline = time.monotonic() + WRITE_PATIENCE
        delay = 0.05
        while True:
            try:
                return getattr(self.store, method)(*args, **kwargs)
            except NotFound:
                raise
            except Exception as exc:  # sqlite3's error or the store's own: retry a full disk only
                if not disk.is_full_error(exc):
                    raise
                self.disk_full = True
                self.reserve.release()  # the workload is stopped by now or about to be: use the room
                if time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
            try:  # a commit that failed may leave the connection inside its transaction
                self.store.close()
                self.store = Store(self.store.path)
            except Exception:  # noqa: S110 - the next attempt reports it
                pass

    def end(self, status: str, exit_code: int | None, message: str) -> int:
        """Record the outcome; hand it to the guard when the store cannot take it. Exit status.

        A tracked workload's MLflow run is claimed first and ended after, by a process of its own.
        """
        try:
            ending = self.tracked and track_end.claim(self.store, self.id)
        except Exception:
            ending = False  # the service ends the run when it sees the record final
        try:
            self._write("finish", self.id, status, exit_code=exit_code, message=message)
        except Exception:
            code = "" if exit_code is None else exit_code
            self._tell("outcome", f"{status}\t{code}\t{message}")
            return UNRECORDED
        finally:
            self.reserve.release()
        if ending:
            track_end.run_after(self.store.path, self.id)
        return 0

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.stop_reason = self.stop_reason or "cancel"
        os.write(self._wake_w, b"x")

    def _terminate(self, pgid: int, proc: Child) -> None:
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
        self._write("update", self.id, supervisor_pid=os.getpid())
        home = self.store.path.parent
        try:
            env = _child_env(self.launch, home, self.store.results_key(self.id))
            proc, running = self._start(env)
        except (OSError, RuntimeError, KeyError) as exc:
            what = f"could not start: {exc}"
            if disk.is_full_error(exc):
                what = disk.full_message(str(self.run_dir), what)
            return self.end(FAILED, None, what)
        pgid = proc.pid
        self._tell("pgid", pgid)
        if not running:
            procs.kill_group(pgid)  # cancelled before it started
            proc.wait()
            return 0
        sampler = usage.start(self.store, self.id, self.launch, env, granted=self.granted, group=self.group)
        try:
            code = self._watch(proc, pgid)
        finally:
            if sampler is not None:
                sampler.stop()
        self.stop_all(pgid)
        return self._record(code)

    def _running(self, pid: int) -> bool:
        """Record the workload running as ``pid``; False when it was cancelled before it started."""
        return bool(
            self._write("update", self.id, only_if=[PENDING], status=RUNNING, pid=pid, started=time.time())
        )

    def _start(self, env: dict[str, str]) -> tuple[Child, bool]:
        """Start the command in its process group, in the workload's cgroup before it runs anything
        (so nothing it starts can leave it): moved between fork and exec, or, for a gated
        runner (:mod:`.gate`), moved while its interpreter boots and only then let through; a
        gated runner this process can stand in for is forked instead (:mod:`.forked`). A gated
        runner is recorded running before it is let through (its first line can follow at once).
        The child, and whether it was recorded running (False: cancelled before it started)."""
        group = self.group
        argv = self.launch["argv"]
        if self.launch.get("gate") and forked.usable(argv, env):  # no interpreter to boot
            return forked.start(argv, env, self.launch.get("cwd"), str(self.log_path), group, self._running)
        gated = bool(group and self.launch.get("gate"))
        gate_r, gate_w = os.pipe() if gated else (-1, -1)
        if gated:
            env[gate.GATE_ENV] = str(gate_r)
        try:
            with self.log_path.open("ab") as log:
                proc = subprocess.Popen(
                    self.launch["argv"],
                    cwd=self.launch.get("cwd") or None,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    process_group=0,
                    pass_fds=(gate_r,) if gated else (),
                    preexec_fn=(lambda: cgroup.enter(group)) if group and not gated else None,
                )
            if gated:
                return proc, gate.let_through(gate_w, proc.pid, group, lambda: self._running(proc.pid))
            return proc, self._running(proc.pid)
        finally:
            if gated:
                os.close(gate_r)
                os.close(gate_w)  # also when the start failed: a runner never waits for nothing

    def stop_all(self, pgid: int | None) -> None:
        """Like a pod: nothing outlives the main process, not even what left its group."""
        procs.kill_group(pgid)
        cgroup.kill(self.group)
        procs.reap()
        # torchrun's workers, sessions of their own, where no cgroup held them: only a process
        # with children left can have descendants (the scan of /proc costs ms per hundred processes)
        if procs.has_children():
            procs.kill_descendants(os.getpid())

    def _watch(self, proc: Child, pgid: int) -> int:
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
        try:
            return final.read_text().strip()[:300] if final.exists() else ""
        except OSError:
            return ""

    def _cancel_requested(self) -> bool:
        try:
            return self.store.get(self.id).cancel_requested
        except Exception:
            return False

    def _record(self, code: int) -> int:
        if self.stop_reason == "cancel" or self._cancel_requested():
            return self.end(CANCELLED, code, "cancelled")
        if self.stop_reason == "timeout":
            return self.end(FAILED, code, f"timed out after {self.launch.get('timeout')}s and was stopped")
        if self.stop_reason == "oom":
            message = f"OOMKilled: used more than the memory limit ({self.launch.get('memory_label')})"
            return self.end(FAILED, code, message)
        if code == 0:
            return self.end(SUCCEEDED, 0, self._final_message())
        reason = (
            f"killed by signal {-code} ({_signal_name(-code)})" if code < 0 else f"exited with code {code}"
        )
        detail = self._final_message() or last_error_line(self.log_path)
        if self.disk_full or disk.is_full(str(self.run_dir)) or disk.names_full(detail):
            what = f"{reason}: {detail}" if disk.names_full(detail) else reason
            return self.end(FAILED, code, disk.full_message(str(self.run_dir), what))
        return self.end(FAILED, code, f"{reason}: {detail}" if detail else reason)


def supervise(db_path: str, workload_id: str, group: str | None, report_fd: int) -> int:
    """Run the supervisor of one workload (in the process the guard forked); its exit status."""
    store = Store(db_path)
    supervisor: Supervisor | None = None
    try:
        supervisor = Supervisor(store, workload_id, group, report_fd)
        return supervisor.run()
    except BaseException as exc:
        message = f"supervisor error: {exc!r}"
        if supervisor is None:
            store.finish(workload_id, FAILED, exit_code=None, message=message)
            raise
        if disk.is_full_error(exc):
            message = disk.full_message(str(supervisor.run_dir), "the supervisor could not write its record")
        supervisor.stop_all(None)  # what it started must not outlive it
        supervisor.end(FAILED, None, message)
        raise
