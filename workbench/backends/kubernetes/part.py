"""What each kind's half of :class:`~.backend.KubernetesBackend` shares: the backend's client,
and a tracker of its own that lists and watches only the kinds that half reads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backend import KubernetesBackend


class BackendPart:
    """The base of the Dask, serve, KServe and TrainJob halves of the backend.

    Attributes:
        TRACKED: the kinds its tracker lists and watches (made on first use).
    """

    TRACKED: tuple[str, ...] = ()

    def __init__(self, backend: KubernetesBackend) -> None:
        self.backend = backend
        self._tracker: Any = None

    @property
    def client(self) -> Any:
        return self.backend.client

    @property
    def tracker(self) -> Any:
        if self._tracker is None:
            from .backend import SELECTOR
            from .tracker import Tracker

            self._tracker = Tracker(self.client, SELECTOR, kinds=self.TRACKED)
        return self._tracker
