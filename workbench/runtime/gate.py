"""A runner started before its cgroup move, that runs nothing of the workload until moved.

Moving a process into a cgroup the guard has just made costs the kernel 10 to 35 ms on these
machines (the first migration into a new cgroup waits for an RCU grace period), and a move
done in the child between fork and exec (``preexec_fn``) puts that wait in front of the
interpreter's start. A *gated* runner (a pod's cell runner) is started at once instead: the
supervisor moves it while its interpreter boots, then opens the gate, a pipe whose read end
the runner got as ``WORKBENCH_GATE_FD``. The runner waits at the gate before it loads the sent
inputs or runs any of the workload's code, so nothing the workload starts can be outside its
cgroup. Only the interpreter's own start-up (``site``) runs before the move.

Only ``os``: the runner imports this before anything else of its own.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

#: The environment variable that names the gate's read end in the runner.
GATE_ENV = "WORKBENCH_GATE_FD"
#: What the supervisor writes to open the gate.
OPEN = b"1"


#: What a runner whose gate was closed unopened says (nothing of the workload ran).
GONE = "workbench: the supervisor went away before the code could start"


def passed(fd: int) -> bool:
    """Block on the gate's read end ``fd`` (closed after); whether the supervisor opened it."""
    try:
        return os.read(fd, 1) == OPEN
    finally:
        os.close(fd)


def wait() -> None:
    """Block until the supervisor opens the gate (no gate: return at once).

    Raises:
        SystemExit: the supervisor went away without opening it; nothing of the workload ran.
    """
    value = os.environ.pop(GATE_ENV, None)
    if value is not None and not passed(int(value)):
        raise SystemExit(GONE)


def let_through(write_fd: int, pid: int, group: str | None, ready: Callable[[], bool]) -> bool:
    """The supervisor's half: move the runner ``pid`` into its cgroup ``group``, then open the
    gate if ``ready()`` (the supervisor has recorded it running; a forked runner prints at once).
    Whether it was opened: when not, the runner leaves without running anything."""
    import contextlib

    if group is not None:
        from . import cgroup

        cgroup.enter(group, pid)
    if not ready():
        return False
    with contextlib.suppress(OSError):  # it died already: its exit code is recorded
        os.write(write_fd, OPEN)
    return True
