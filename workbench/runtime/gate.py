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

#: The environment variable that names the gate's read end in the runner.
GATE_ENV = "WORKBENCH_GATE_FD"
#: What the supervisor writes to open the gate.
OPEN = b"1"


def wait() -> None:
    """Block until the supervisor opens the gate (no gate: return at once).

    Raises:
        SystemExit: the supervisor went away without opening it; nothing of the workload ran.
    """
    value = os.environ.pop(GATE_ENV, None)
    if value is None:
        return
    fd = int(value)
    try:
        got = os.read(fd, 1)
    finally:
        os.close(fd)
    if got != OPEN:
        raise SystemExit("workbench: the supervisor went away before the code could start")
