"""The guard: the first process of a local workload, which outlives its supervisor.

``python -m workbench.runtime.supervisor DB ID`` detaches and becomes the guard, a bare
interpreter that imports nothing heavy. It makes the workload's cgroup where the machine
allows (:mod:`.cgroup`), makes itself a child subreaper and forks the supervisor, which runs
the workload below it. Then it only waits. Whatever ends the supervisor (its normal exit, a
crash, SIGKILL), the guard is told by the kernel (``waitpid``), and:

1. kills every process of the workload: its cgroup, its process group (the supervisor tells
   the guard the pgid and the run directory through a pipe), every process reparented to the
   guard (all orphans of the workload land here, sessions and double forks included), and
   every process of this user whose environment carries ``WORKBENCH_RUN_DIR=<run dir>``;
   repeated until none is left;
2. removes the cgroup;
3. when the supervisor did not end cleanly, records the truth itself, e.g. "the supervisor
   was killed (SIGKILL); the workload's processes were stopped", or the outcome the
   supervisor handed over but could not write (a full disk), retrying while the disk is full.

So no process of a workload outlives its end, and its record becomes final, even when the
supervisor is killed with nobody reading the record. The store is imported only for that
last write.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from typing import TYPE_CHECKING

from . import cgroup, disk, procs

if TYPE_CHECKING:
    from collections.abc import Callable

    #: Runs the supervisor in the forked child: (db path, workload id, cgroup, report fd) → exit status.
    Supervise = Callable[[str, str, str | None, int], int]

#: What the backend runs; the guard and the supervisor both carry this command line.
SUPERVISOR_MODULE = "workbench.runtime.supervisor"
STOP_ROUNDS = 50
#: Seconds the guard keeps trying to write an outcome while the store's disk is full.
RECORD_PATIENCE = 600.0


class Report:
    """What the supervisor tells its guard through the pipe, one ``key value`` line each."""

    def __init__(self, raw: bytes) -> None:
        self.pgid: int | None = None
        self.run_dir: str | None = None
        self.reserve: str | None = None
        self.outcome: tuple[str, int | None, str] | None = None
        for line in raw.decode("utf-8", "replace").splitlines():
            key, _, value = line.partition(" ")
            if key == "pgid" and value.isdigit():
                self.pgid = int(value)
            elif key == "run_dir":
                self.run_dir = value
            elif key == "reserve":
                self.reserve = value
            elif key == "outcome":
                status, code, message = ([*value.split("\t", 2), "", ""])[:3]
                self.outcome = (status, int(code) if code.lstrip("-").isdigit() else None, message)

    @staticmethod
    def line(key: str, value: object) -> bytes:
        return f"{key} {str(value).replace(chr(10), ' ')}\n".encode()


def run(db_path: str, workload_id: str, supervise: Supervise) -> int:
    """Guard one workload: fork the supervisor (``supervise``), then clean up after it."""
    procs.become_subreaper()
    group = cgroup.create(cgroup.name_for(db_path, workload_id))
    read_fd, write_fd = os.pipe()
    stops = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    for sig in stops:  # the supervisor answers these; the guard stays until it has ended
        signal.signal(sig, signal.SIG_IGN)
    pid = os.fork()
    if pid == 0:
        for sig in stops:
            signal.signal(sig, signal.SIG_DFL)
        os.close(read_fd)
        os._exit(_supervisor(supervise, db_path, workload_id, group, write_fd))
    os.close(write_fd)
    status = _wait_for(pid)
    report = Report(_read_all(read_fd))
    stop_workload(db_path, workload_id, report.run_dir, report.pgid, group, adopted=True)
    cgroup.remove(group)
    if report.reserve:  # the supervisor's room for its final write, if it did not give it back
        _unlink(report.reserve)
    clean = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    if report.outcome is not None or not clean:
        _record(db_path, workload_id, status, report)
    return 0


def _supervisor(supervise: Supervise, db_path: str, workload_id: str, group: str | None, fd: int) -> int:
    code = 1
    try:
        code = supervise(db_path, workload_id, group, fd)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    return code


def _wait_for(pid: int) -> int:
    """Reap children (orphans are adopted here) until ``pid`` ends; its wait status."""
    while True:
        try:
            reaped, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 1 << 8
        if reaped == pid:
            return status


def _read_all(fd: int) -> bytes:
    os.set_blocking(fd, False)  # the writer is gone; never wait on a copy some child might hold
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except BlockingIOError:
        pass
    finally:
        os.close(fd)
    return b"".join(chunks)


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def stop_workload(
    db_path: str,
    workload_id: str,
    run_dir: str | None,
    pgid: int | None,
    group: str | None = None,
    *,
    adopted: bool = False,
) -> None:
    """SIGKILL every process of a workload until none is left.

    Args:
        db_path: its store (part of its cgroup's name).
        workload_id: the workload.
        run_dir: its run directory (the environment marker), if known.
        pgid: its process group (the main process's pid), if known.
        group: its cgroup folder; by default the ones found from its live processes.
        adopted: also kill everything below this process (the guard, a subreaper, adopts the
            workload's orphans); never for an ordinary caller such as the CLI.
    """
    name = cgroup.name_for(db_path, workload_id)
    groups = {group} if group else set()
    for _ in range(STOP_ROUNDS):
        left = procs.marked(run_dir) if run_dir else []
        if pgid:
            left += procs.group_members(pgid)
        if adopted:
            left += procs.descendants(os.getpid())
        if not group:
            groups |= cgroup.find(name, [*left, *([pgid] if pgid else [])])
        for path in groups:
            cgroup.kill(path)
        procs.kill_group(pgid)
        procs.kill_pids(left)
        procs.reap()
        if not left and not any(cgroup.populated(path) for path in groups):
            break
        time.sleep(0.02)
    if not group:
        for path in groups:
            cgroup.remove(path)


def is_guarded(db_path: str, workload_id: str) -> bool:
    """Whether a guard (or supervisor) process of this workload still runs."""
    return bool(procs.with_argv_tail(SUPERVISOR_MODULE, db_path, workload_id))


def _death(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"the supervisor was killed ({name}); the workload's processes were stopped"
    return (
        f"the supervisor failed (exit code {os.WEXITSTATUS(status)}; see logs/supervisor.log); "
        "the workload's processes were stopped"
    )


def _record(db_path: str, workload_id: str, status: int, report: Report) -> None:
    from ..store import CANCELLED, FAILED, Store

    deadline = time.monotonic() + RECORD_PATIENCE
    delay = 0.05
    while True:
        try:
            store = Store(db_path)
            try:
                final, exit_code, message = report.outcome or (FAILED, None, _death(status))
                if report.outcome is None and store.get(workload_id).cancel_requested:
                    final, message = CANCELLED, "cancelled"  # it died while being stopped on request
                store.finish(workload_id, final, exit_code=exit_code, message=message)
            finally:
                store.close()
            return
        except Exception as exc:  # the store's own error or sqlite's: retry only a full disk
            if not disk.is_full_error(exc) or time.monotonic() + delay > deadline:
                print(f"workbench guard: could not record {workload_id}: {exc}", file=sys.stderr)
                return
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
