"""Process helpers for the local backend, its supervisor and its guard (Linux ``/proc``).

Only ``os``-level calls (no pathlib): the guard imports this module and stays a bare interpreter.
"""

from __future__ import annotations

import contextlib
import os
import signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

_PROC = "/proc"
#: The environment variable every process of a local workload carries (set by the backend):
#: its run directory, unique across stores where a workload's name is not.
MARKER_ENV = "WORKBENCH_RUN_DIR"


def _read(pid: int, name: str) -> bytes | None:
    try:
        with open(f"{_PROC}/{pid}/{name}", "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _pids() -> list[int]:
    return [int(name) for name in os.listdir(_PROC) if name.isdigit()]


def _stat_fields(pid: int) -> list[str] | None:
    raw = _read(pid, "stat")
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace")
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    return text[text.rfind(")") + 2 :].split()


def is_alive(pid: int | None, marker: str | None = None) -> bool:
    """Whether ``pid`` runs (zombies count as gone) and, with ``marker``, is still ours.

    The marker (a workload id) must appear in the command line, so a recycled pid does not
    pass for a workload's process.
    """
    if not pid or pid <= 0:
        return False
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    if marker is None:
        return True
    return marker.encode() in cmdline(pid)


def group_members(pgid: int) -> list[int]:
    """Live pids in process group ``pgid``."""
    members = []
    for pid in _pids():
        fields = _stat_fields(pid)
        # after ')': state ppid pgrp …
        if fields and fields[0] not in ("Z", "X") and fields[2] == str(pgid):
            members.append(pid)
    return members


def group_rss(pgid: int) -> int:
    """Resident memory, in bytes, of every live process in group ``pgid``."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in group_members(pgid):
        fields = _stat_fields(pid)
        if fields:
            total += int(fields[21]) * page  # field 24 of stat: rss in pages
    return total


def signal_group(pgid: int | None, sig: int) -> bool:
    """Send ``sig`` to a process group; False when the group is already gone."""
    if not pgid or pgid <= 1:
        return False
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def kill_group(pgid: int | None) -> None:
    signal_group(pgid, signal.SIGKILL)


_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux), so none escapes by starting a session of its own.

    torchrun, for one, starts each worker in a new session: a process-group kill misses them,
    and when torchrun dies they would be reparented to init and live on.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def descendants(pid: int) -> list[int]:
    """Live processes below ``pid`` (children, their children, …)."""
    children: dict[int, list[int]] = {}
    for child in _pids():
        fields = _stat_fields(child)
        if fields and fields[0] not in ("Z", "X"):
            children.setdefault(int(fields[1]), []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_pids(pids: list[int]) -> None:
    """SIGKILL each of ``pids`` that still exists."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def reap() -> None:
    """Reap every child of this process that has ended (never blocks)."""
    while True:
        try:
            reaped, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if reaped == 0:
            break


def has_children() -> bool:
    """Whether this process has a child, running or ended and not yet reaped (reaps none)."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def kill_descendants(pid: int) -> None:
    """SIGKILL everything below ``pid`` and reap what was ours to reap."""
    kill_pids(descendants(pid))
    reap()


def marked(run_dir: str) -> list[int]:
    """Live processes of this user that carry ``WORKBENCH_RUN_DIR=<run_dir>`` in their environment.

    A process that left the workload's process group, session and process tree (a daemon that
    double-forked after its supervisor died) still has the environment it was started with.
    This process itself is never listed.
    """
    needle = f"\0{MARKER_ENV}={run_dir}\0".encode()
    uid, me = os.getuid(), os.getpid()
    found = []
    for pid in _pids():
        if pid == me:
            continue
        try:
            if os.stat(f"{_PROC}/{pid}").st_uid != uid:
                continue
        except OSError:
            continue
        environ = _read(pid, "environ")
        if environ and needle in b"\0" + environ:
            fields = _stat_fields(pid)
            if fields and fields[0] not in ("Z", "X"):
                found.append(pid)
    return found


def cmdline(pid: int) -> bytes:
    """``pid``'s NUL-separated command line; empty once it has gone (or for a kernel thread)."""
    return _read(pid, "cmdline") or b""


def with_argv_tail(*tail: str) -> list[int]:
    """Live processes whose command line contains ``tail`` as consecutive arguments (not this one)."""
    needle = b"\0" + b"\0".join(part.encode() for part in tail) + b"\0"
    me = os.getpid()
    found = []
    for pid in _pids():
        line = cmdline(pid)
        if pid != me and line and needle in b"\0" + line:
            fields = _stat_fields(pid)
            if fields and fields[0] not in ("Z", "X"):
                found.append(pid)
    return found


def cgroup_of(pid: int) -> str | None:
    """The cgroup v2 path of ``pid`` (``0::/…`` in ``/proc/PID/cgroup``), if it has one."""
    raw = _read(pid, "cgroup")
    for line in (raw or b"").decode("utf-8", "replace").splitlines():
        if line.startswith("0::"):
            return line[3:].removesuffix(" (deleted)")
    return None


def command_line(argv: Sequence[str]) -> bytes:
    """``argv`` as ``/proc/PID/cmdline`` holds it (each argument NUL-terminated)."""
    return b"".join(part.encode() + b"\0" for part in argv)


def argv_area() -> tuple[int, int]:
    """Where this process's command line is in its memory (``arg_start``, ``arg_end``)."""
    fields = _stat_fields(os.getpid())
    if fields is None:
        raise OSError("cannot read /proc/self/stat")
    return int(fields[45]), int(fields[46])  # fields 48 and 49 of stat


def set_argv(argv: bytes) -> None:
    """Write ``argv`` (NUL-separated) over this process's command line, NULs after it
    (what does not fit is cut: see :func:`argv_area` for the room)."""
    import ctypes

    start, end = argv_area()
    room = end - start
    ctypes.memmove(start, argv.ljust(room, b"\0")[:room], room)
