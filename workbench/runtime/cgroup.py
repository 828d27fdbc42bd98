"""A cgroup v2 per local workload, where this machine lets us make one.

The guard makes ``<its own cgroup>/workbench.slice/<id>-<store>`` on the cgroup2 mount (the
store's part tells apart workloads of the same name in two WORKBENCH_HOMEs), the supervisor
moves the workload's first process into it before that process runs anything of the workload
(between fork and exec, or while a gated runner boots: :mod:`.gate`), and every
process the workload starts stays in it, whatever it does with sessions, process groups or
double forks. Ending the workload is then one write to ``cgroup.kill`` (or, on kernels before
5.14, killing every pid listed until none is left), and the folder is removed once empty.

Where there is no writable cgroup2 mount (cgroup v1 only, an unprivileged container), or
``WORKBENCH_CGROUPS=off`` is set (a host whose cgroups another manager owns), :func:`create`
returns None and the guard falls back to process tracking (:mod:`.procs`). Only ``os`` and
``time``: the guard imports this and stays small.
"""

from __future__ import annotations

import os
import time

from . import procs

#: The folder, under the guard's own cgroup, that holds one cgroup per workload.
SLICE = "workbench.slice"
#: Set to ``off`` (or ``0``, ``no``) to never make cgroups.
SWITCH_ENV = "WORKBENCH_CGROUPS"


def name_for(db_path: str, workload_id: str) -> str:
    """The workload's cgroup name: its id and a 32-bit FNV-1a hash of its store's path."""
    value = 0x811C9DC5
    for byte in db_path.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"{workload_id}-{value:08x}"


def _mount() -> tuple[str, str] | None:
    """The cgroup2 mount point and the cgroup path that is its root, from mountinfo."""
    try:
        with open("/proc/self/mountinfo") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if right.split()[:1] == ["cgroup2"] and len(fields) >= 5:
            return fields[4].replace("\\040", " "), fields[3]
    return None


def _host_path(cgroup: str) -> str | None:
    """Where ``cgroup`` (a path as /proc/PID/cgroup gives it) is on this process's cgroup2 mount."""
    mount = _mount()
    if mount is None:
        return None
    point, root = mount
    if root != "/" and cgroup.startswith(root):
        cgroup = cgroup[len(root) :]
    return os.path.join(point, cgroup.lstrip("/"))


def path_for(name: str, pid: int | None = None) -> str | None:
    """The folder of the cgroup ``name`` when it is made by ``pid`` (default: this process)."""
    own = procs.cgroup_of(pid or os.getpid())
    if own is None:
        return None
    base = _host_path(own)
    return None if base is None else os.path.join(base, SLICE, name)


def create(name: str) -> str | None:
    """Make the cgroup ``name`` (see :func:`name_for`); None where this machine does not let us."""
    if os.environ.get(SWITCH_ENV, "").strip().lower() in ("off", "0", "no", "false"):
        return None
    path = path_for(name)
    if path is None:
        return None
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.isdir(path):  # left by an earlier run of the same name: empty it first
            kill(path)
            remove(path)
        os.mkdir(path)
    except OSError:
        return None
    if not os.access(os.path.join(path, "cgroup.procs"), os.W_OK):
        remove(path)
        return None
    return path


def find(name: str, pids: list[int]) -> set[str]:
    """The folders of the cgroup ``name``: where this process would make it, and where ``pids`` are."""
    found = set()
    candidates = [path_for(name)]
    candidates += [_host_path(c) for c in (procs.cgroup_of(pid) for pid in pids) if c]
    for path in candidates:
        if path and path.endswith(f"/{SLICE}/{name}") and os.path.isdir(path):
            found.add(path)
    return found


def enter(path: str, pid: int = 0) -> None:
    """Move process ``pid`` (default: the calling one, e.g. a child before exec) into the
    cgroup at ``path``, with all its threads.

    Never raises: where the move is refused the workload runs on, tracked as processes.
    """
    try:
        fd = os.open(os.path.join(path, "cgroup.procs"), os.O_WRONLY)
        try:
            os.write(fd, str(pid).encode())
        finally:
            os.close(fd)
    except OSError:
        pass


def _read(path: str, name: str) -> str:
    try:
        with open(os.path.join(path, name)) as fh:
            return fh.read()
    except OSError:
        return ""


def _folders(path: str) -> list[str]:
    """``path`` and every cgroup below it, deepest first."""
    found: list[str] = []
    for top, dirs, _ in os.walk(path, topdown=False):
        found.extend(os.path.join(top, d) for d in dirs)
    return [*found, path]


def members(path: str) -> list[int]:
    """The pids in the cgroup at ``path`` and below."""
    pids = []
    for folder in _folders(path):
        pids += [int(p) for p in _read(folder, "cgroup.procs").split()]
    return pids


def populated(path: str) -> bool:
    return "populated 1" in _read(path, "cgroup.events")


def kill(path: str | None, timeout: float = 5.0) -> None:
    """SIGKILL every process in the cgroup (and below) and wait, within ``timeout``, until it is empty."""
    if path is None or not os.path.isdir(path):
        return
    try:
        fd = os.open(os.path.join(path, "cgroup.kill"), os.O_WRONLY)  # Linux 5.14+: atomic
        try:
            os.write(fd, b"1")
        finally:
            os.close(fd)
        killed = True
    except OSError:
        killed = False
    deadline = time.monotonic() + timeout
    while populated(path) and time.monotonic() < deadline:
        if not killed:  # no cgroup.kill: kill what is listed until nothing is (forks race this)
            procs.kill_pids(members(path))
        procs.reap()  # what was reparented to us must not linger as zombies
        time.sleep(0.01)


def remove(path: str | None, timeout: float = 2.0) -> None:
    """Remove the (emptied) cgroup and any below it; leaves it when it will not go in ``timeout``."""
    if path is None:
        return
    deadline = time.monotonic() + timeout
    while True:
        busy = False
        for folder in _folders(path) if os.path.isdir(path) else []:
            try:
                os.rmdir(folder)
            except FileNotFoundError:
                pass
            except OSError:
                busy = True
        if not busy or time.monotonic() > deadline:
            return
        procs.reap()
        time.sleep(0.01)
