"""One thread per kernel that follows the store for every live widget in it.

It is the server's :class:`~workbench.server.watcher.ChangeWatcher` run in a thread of its
own instead of on an event loop (a kernel's loop stands still while a cell waits on its
workload, which is when the widget matters most), and looking at the workloads its widgets
show instead of the whole store: ``PRAGMA data_version`` on a connection of its own says
whether anyone committed since the last look; only then are the watched records, their
usage summaries and their new usage samples read. Active watched workloads are refreshed
through the service every ``refresh_interval`` seconds, as the server does, so a change only
a backend knows of reaches the store. Targets are also ticked every ``poll_interval`` for the
clocks they show.

Nothing here imports a front-end library: the targets (:mod:`workbench.widgets`) do.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .errors import NotFound
from .server.watcher import MAX_BACKOFF, ChangeWatcher, Seen, snapshot
from .store import ACTIVE

if TYPE_CHECKING:
    from .service import Service
    from .store import Workload

LOG = logging.getLogger("workbench.widgets")
POLL_INTERVAL = 0.2  # seconds between two looks at the store's data version (O2: ≤ 1 s to show)
REFRESH_INTERVAL = 2.0  # seconds between two refreshes of the watched active workloads
IDLE_EXIT = 10.0  # seconds the thread waits with nothing to watch before it ends


class Target(Protocol):
    """What the watcher keeps up to date (a widget)."""

    #: whether :meth:`deliver` wants usage summaries and samples
    wants_usage: bool

    def watched(self) -> Collection[str]:
        """The workload ids to follow now (may grow, e.g. as a sweep launches runs)."""
        ...

    def deliver(
        self,
        workload_id: str,
        workload: Workload | None,
        summary: Mapping[str, Any] | None,
        samples: list[dict[str, Any]],
    ) -> None:
        """A watched record changed (None: deleted), with the usage samples new since the last call."""
        ...

    def tick(self, now: float) -> bool:
        """Called every poll; False when the target needs no more updates."""
        ...


class _Followed:
    """What one target has been shown so far."""

    def __init__(self) -> None:
        self.seen: dict[str, Seen | None] = {}
        self.last_t: dict[str, float] = {}
        self.summary_t: dict[str, float | None] = {}


class KernelWatcher(ChangeWatcher):
    """The kernel's watcher: :meth:`add` a target and it is kept up to date until it says done."""

    def __init__(
        self,
        new_service: Callable[[], Service],
        *,
        poll_interval: float = POLL_INTERVAL,
        refresh_interval: float = REFRESH_INTERVAL,
        idle_exit: float = IDLE_EXIT,
        log: logging.Logger = LOG,
    ) -> None:
        super().__init__(
            new_service, _unused, poll_interval=poll_interval, refresh_interval=refresh_interval, log=log
        )
        self.idle_exit = idle_exit
        self._lock = threading.Lock()
        self._targets: dict[Target, _Followed] = {}
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (a second call does nothing; :meth:`add` calls it)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._main, name="workbench-widgets", daemon=True)
                self._thread.start()

    def add(self, target: Target) -> None:
        """Follow ``target`` from the next poll on."""
        with self._lock:
            self._targets[target] = _Followed()
        self.start()
        self._wake.set()

    def discard(self, target: Target) -> None:
        with self._lock:
            self._targets.pop(target, None)

    def targets(self) -> list[Target]:
        with self._lock:
            return list(self._targets)

    # -- in the watcher thread -------------------------------------------------------------
    def _main(self) -> None:
        delay, idle_since = self.poll_interval, time.monotonic()
        while True:
            try:
                self._step()
                delay = self.poll_interval
            except Exception:
                self.log.warning("workbench: the widgets could not read the workload store", exc_info=True)
                self._close()
                delay = min(max(delay, 0.5) * 2, MAX_BACKOFF)
            with self._lock:
                if self._targets:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > self.idle_exit:
                    self._thread = None
                    self._close()
                    self._version = self._seen = None
                    return
            self._wake.wait(delay)
            self._wake.clear()

    def _step(self) -> None:
        with self._lock:
            followed = list(self._targets.items())
        if not followed:
            return
        watched = {target: list(target.watched()) for target, _ in followed}
        ids = sorted({name for names in watched.values() for name in names})
        if ids:
            self._look(followed, watched, ids)
        now = time.time()
        for target, _ in followed:
            try:
                keep = target.tick(now)
            except Exception:
                self.log.warning("workbench: a widget failed to update", exc_info=True)
                keep = False
            if not keep:
                self.discard(target)

    def _look(
        self, followed: list[tuple[Target, _Followed]], watched: dict[Target, list[str]], ids: list[str]
    ) -> None:
        service, db = self._open()
        known = self._seen or {}
        fresh = any(name not in state.seen for target, state in followed for name in watched[target])
        refresh = time.monotonic() >= self._next_refresh and any(
            seen.status in ACTIVE for seen in known.values()
        )
        if refresh:
            self._refresh_active(service)  # the parent's: through the service, bounded, one failure a backend
            self._next_refresh = time.monotonic() + self.refresh_interval
        # read the version before the records: a commit after this read shows up next time
        version = int(db.execute("PRAGMA data_version").fetchone()[0])
        if version == self._version and not refresh and not fresh:
            return
        self._version = version
        records: dict[str, Workload] = {}
        for name in ids:
            try:
                records[name] = service.store.get(name)
            except NotFound:
                continue
        self._seen = current = snapshot(records.values())
        usage_ids = sorted({n for target, _ in followed if target.wants_usage for n in watched[target]})
        summaries = service.store.usage_summaries(usage_ids) if usage_ids else {}
        for target, state in followed:
            for name in watched[target]:
                self._deliver(service, target, state, name, records.get(name), current.get(name), summaries)

    def _deliver(
        self,
        service: Service,
        target: Target,
        state: _Followed,
        name: str,
        record: Workload | None,
        seen: Seen | None,
        summaries: Mapping[str, dict[str, Any]],
    ) -> None:
        summary = summaries.get(name) if target.wants_usage else None
        summary_t = None if summary is None else summary["last_t"]
        if name in state.seen and state.seen[name] == seen and state.summary_t.get(name) == summary_t:
            return
        samples: list[dict[str, Any]] = []
        if summary is not None and state.summary_t.get(name) != summary_t:
            samples = service.store.usage(name, since=state.last_t.get(name))
            if samples:
                state.last_t[name] = samples[-1]["t"]
        state.seen[name], state.summary_t[name] = seen, summary_t
        try:
            target.deliver(name, record, summary, samples)
        except Exception:
            self.log.warning("workbench: a widget failed to update", exc_info=True)


def _unused(data: dict[str, Any]) -> None:  # the parent's event callback: targets are told directly
    """Events are not emitted in a kernel."""


_WATCHER: KernelWatcher | None = None
_WATCHER_LOCK = threading.Lock()


def kernel_watcher(new_service: Callable[[], Service]) -> KernelWatcher:
    """The one watcher of this process (made on first use with ``new_service``)."""
    global _WATCHER
    with _WATCHER_LOCK:
        if _WATCHER is None:
            _WATCHER = KernelWatcher(new_service)
        return _WATCHER
