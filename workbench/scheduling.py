"""Schedule operations of the service: pause, resume, and the runs a schedule made.

A schedule is a notebook run launched with ``schedule`` (a CronJob on Kubernetes; the local
backend refuses schedules at launch). These work on a backend that declares the
:class:`~workbench.backends.base.Scheduling` ability.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

from .backends.base import Scheduling, ability
from .errors import Conflict

if TYPE_CHECKING:
    from .backends.base import Backend
    from .store import Workload


class ScheduleOperations:
    """Schedule operations of :class:`~workbench.service.Service`."""

    if TYPE_CHECKING:  # provided by Service

        def backend(self, name: str) -> Backend: ...

        def get(self, name: str) -> Workload: ...

    def _schedule(self, name: str) -> tuple[Scheduling, Workload]:
        workload = self.get(name)
        found: Scheduling | None = ability(self.backend(workload.backend), Scheduling)
        if found is None or workload.kind != "notebook" or not workload.spec.get("schedule"):
            raise Conflict(
                f"{workload.id} is a {workload.kind} workload, not a schedule; pause, resume and runs "
                "apply to notebooks launched with a schedule on Kubernetes",
                value=workload.id,
                hint="`workbench ls --kind notebook` lists them",
            )
        return found, workload

    def pause(self, name: str) -> Workload:
        """Pause schedule ``name``: it starts no run until :meth:`resume` (one going runs on)."""
        backend, workload = self._schedule(name)
        return backend.suspend(workload, True)

    def resume(self, name: str) -> Workload:
        """Resume a paused schedule."""
        backend, workload = self._schedule(name)
        return backend.suspend(workload, False)

    def schedule_runs(self, name: str) -> builtins.list[dict[str, Any]]:
        """The runs schedule ``name`` made, newest first: ``{"name", "status", "message",
        "started", "ended", "location"}``."""
        backend, workload = self._schedule(name)
        return backend.schedule_runs(workload)
