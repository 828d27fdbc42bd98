"""The :class:`~workbench.backends.base.Serving` ability of the Kubernetes backend: each call goes
to the endpoint half (:class:`~.serve.ServeEndpoints`, imported on first use)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ...spec import RevisionChange
    from ...store import Workload
    from ..base import Payload
    from .serve import ServeEndpoints


class EndpointAbility:
    """Mixed into :class:`~.backend.KubernetesBackend`."""

    @functools.cached_property
    def serve(self) -> ServeEndpoints:
        """The endpoint half of the backend (imported and started on first use)."""
        from .serve import ServeEndpoints

        return ServeEndpoints(self)  # type: ignore[arg-type]  # mixed into the backend

    def rollout(self, workload: Workload, change: RevisionChange, payload: Payload) -> Workload:
        return self.serve.rollout(workload, change, payload)

    def promote(self, workload: Workload) -> Workload:
        return self.serve.promote(workload)

    def undo(self, workload: Workload, to_revision: int | None) -> Workload:
        return self.serve.undo(workload, to_revision)

    def rollout_state(self, workload: Workload) -> dict[str, Any]:
        state: dict[str, Any] = (
            self.serve.kserve.rollout_state(workload)
            if self.serve.is_kserve(workload)
            else self.serve.rollout_state(workload)
        )
        return state

    def history(self, workload: Workload) -> list[dict[str, Any]]:
        return self.serve.history(workload)

    def scale_endpoint(
        self, workload: Workload, replicas: int | None, autoscale: tuple[int, int] | None
    ) -> Workload:
        return self.serve.scale_endpoint(workload, replicas, autoscale)

    def request(
        self, workload: Workload, method: str, path: str, body: bytes | None, timeout: float
    ) -> tuple[int, bytes]:
        return self.serve.request(workload, method, path, body, timeout)
