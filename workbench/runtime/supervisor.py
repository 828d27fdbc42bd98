"""Entry point of a local workload's supervision: ``python -m workbench.runtime.supervisor DB ID``.

The backend starts this in a session of its own. It forks once more so it is never the
zombie child of the process that launched it (a kernel may live on, or die, without
affecting it), and the detached process becomes the workload's **guard** (:mod:`.guard`),
which forks the **supervisor** (:mod:`.supervise`)::

    launcher ──(new session)── python -m workbench.runtime.supervisor DB ID   exits at once
                                 └─ guard        bare interpreter, subreaper; outlives the supervisor
                                     └─ supervisor   runs the workload, records its outcome
                                         └─ the workload's process group, in its cgroup

Both keep this command line, so ``/proc/PID/cmdline`` names the workload they belong to.
This module imports only ``os``, ``sys`` and the guard: the guard stays a bare interpreter,
and the supervisor loads the store and the rest after the fork.
"""

from __future__ import annotations

import os
import sys

from . import guard


def _supervise(db_path: str, workload_id: str, group: str | None, report_fd: int) -> int:
    from .supervise import supervise

    return supervise(db_path, workload_id, group, report_fd)


def main(argv: list[str]) -> int:
    db_path, workload_id = argv
    if os.fork() > 0:  # detach: the launcher reaps this parent at once
        os._exit(0)
    return guard.run(db_path, workload_id, _supervise)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
