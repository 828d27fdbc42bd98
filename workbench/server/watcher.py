"""Pushes an event for every workload change, whichever process made it.

Every process (kernels, the CLI, supervisors, this server) writes to the same SQLite store.
SQLite's ``PRAGMA data_version`` on a connection of our own changes whenever another
connection commits, so checking it every ``poll_interval`` seconds costs next to nothing;
only when it changed is the store listed and diffed against the last snapshot. Workloads
still active are also refreshed through the service every ``refresh_interval`` seconds, so a
change only the backend knows of (a Kubernetes pod finished, a supervisor killed) reaches
the store, and from there the event bus. A local notebook run moving on to its next cell
(its ``progress.json``) is a change too, seen at those refreshes.

All SQLite work happens in one thread that owns its connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BackendUnavailable, NotFound, WorkbenchError
from ..store import ACTIVE, Workload
from .base import progress

if TYPE_CHECKING:
    from ..service import Service

SCHEMA_ID = "https://events.jupyter.org/jupyter_ml_workbench/workload/v1"
SCHEMA_PATH = Path(__file__).parent / "events" / "workload-v1.yaml"
MAX_BACKOFF = 30.0


@dataclass(frozen=True)
class Seen:
    """What the events report about a workload; any difference is a change."""

    kind: str
    backend: str
    status: str
    message: str
    exit_code: int | None
    started: float | None
    ended: float | None
    #: endpoints and scale (a Dask cluster's address, dashboard, requested workers) as sorted JSON
    info: str = "{}"
    #: which cell a local notebook run executes (see :func:`.base.progress`), as JSON
    progress: str = "null"


def _identity(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def snapshot(workloads: Iterable[Workload]) -> dict[str, Seen]:
    return {
        w.id: Seen(
            w.kind,
            w.backend,
            w.status,
            w.message,
            w.exit_code,
            w.started,
            w.ended,
            json.dumps(w.info, sort_keys=True, default=str),
            json.dumps(progress(w)),
        )
        for w in workloads
    }


def event(action: str, name: str, seen: Seen) -> dict[str, Any]:
    """The event data of one change, as the schema at :data:`SCHEMA_PATH` describes it."""
    return {
        "action": action,
        "name": name,
        "kind": seen.kind,
        "backend": seen.backend,
        "status": seen.status,
        "message": seen.message,
        "exit_code": seen.exit_code,
    }


def diff(before: Mapping[str, Seen], after: Mapping[str, Seen]) -> list[dict[str, Any]]:
    """Events that turn ``before`` into ``after``: added and changed, then removed."""
    events = []
    for name, now in after.items():
        was = before.get(name)
        if was != now:
            events.append(event("added" if was is None else "changed", name, now))
    events.extend(event("removed", name, was) for name, was in before.items() if name not in after)
    return events


class ChangeWatcher:
    """A background task that emits workload events.

    Args:
        new_service: builds a service (called in the watcher's own thread).
        emit: called on the event loop with each event's data.
        poll_interval: seconds between two checks of the store's data version.
        refresh_interval: seconds between two refreshes of the active workloads.
        max_refresh: most workloads refreshed in one round.
        log: where failures are reported.
    """

    def __init__(
        self,
        new_service: Callable[[], Service],
        emit: Callable[[dict[str, Any]], None],
        *,
        poll_interval: float,
        refresh_interval: float,
        max_refresh: int = 50,
        log: logging.Logger,
    ) -> None:
        self._new_service = new_service
        self._emit = emit
        self.poll_interval = poll_interval
        self.refresh_interval = refresh_interval
        self.max_refresh = max_refresh
        self.log = log
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        # owned by the watcher thread
        self._service: Service | None = None
        self._db: sqlite3.Connection | None = None
        self._path = ""
        self._file: tuple[int, int] | None = None  # (device, inode) of the store the connection reads
        self._version: int | None = None
        self._seen: dict[str, Seen] | None = None
        self._next_refresh = 0.0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start watching (call on the running event loop; a second call does nothing)."""
        if self.running:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="workbench-watch")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="workbench-watch")

    async def stop(self) -> None:
        task, executor = self._task, self._executor
        self._task = self._executor = None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if executor is not None:
            loop = asyncio.get_running_loop()
            with contextlib.suppress(Exception):  # a refresh stuck on the cluster must not hold shutdown
                await asyncio.wait_for(loop.run_in_executor(executor, self._close), 2.0)
            executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._executor is not None
        executor = self._executor
        delay = self.poll_interval
        while True:
            try:
                events = await loop.run_in_executor(executor, self._tick)
                delay = self.poll_interval
            except Exception as exc:
                if isinstance(exc, WorkbenchError):  # e.g. a broken config file: say what to fix
                    self.log.warning("workbench: cannot watch workloads: %s", exc.one_line())
                else:
                    self.log.warning("workbench: watching the workload store failed", exc_info=True)
                await loop.run_in_executor(executor, self._close)
                events, delay = [], min(max(delay, 0.5) * 2, MAX_BACKOFF)
            for data in events:
                try:
                    self._emit(data)
                except Exception:
                    self.log.warning("workbench: could not emit %r", data, exc_info=True)
            await asyncio.sleep(delay)

    # -- in the watcher thread -------------------------------------------------------------
    def _open(self) -> tuple[Service, sqlite3.Connection]:
        if self._db is not None and _identity(self._path) != self._file:
            self._close()  # the store file was deleted or replaced: its data_version is another file's
        if self._service is None or self._db is None:
            service = self._new_service()
            try:
                path = service.store.path  # creates the database and its schema when missing
                db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
            except BaseException:
                service.close()
                raise
            self._service, self._db, self._version = service, db, None
            self._path, self._file = str(path), _identity(str(path))
        return self._service, self._db

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
        if self._service is not None:
            self._service.close()
        self._service = self._db = None

    def _tick(self) -> list[dict[str, Any]]:
        service, db = self._open()
        refresh = (
            self._seen is not None
            and time.monotonic() >= self._next_refresh
            and any(seen.status in ACTIVE for seen in self._seen.values())
        )
        if refresh:
            self._refresh_active(service)
            self._next_refresh = time.monotonic() + self.refresh_interval
        # read the version before listing: a commit after this read shows up next time
        version = int(db.execute("PRAGMA data_version").fetchone()[0])
        if version == self._version and not refresh:
            return []
        self._version = version
        current = snapshot(service.store.list())
        events = [] if self._seen is None else diff(self._seen, current)
        self._seen = current
        return events

    def _refresh_active(self, service: Service) -> None:
        """Bring active workloads up to date through their backends, a bounded number per round."""
        assert self._seen is not None
        active = [(name, seen.backend) for name, seen in self._seen.items() if seen.status in ACTIVE]
        unreachable: set[str] = set()
        for name, backend in active[: self.max_refresh]:
            if backend in unreachable:
                continue
            try:
                service.get(name)
            except NotFound:
                continue
            except BackendUnavailable as exc:
                unreachable.add(backend)  # one slow failure per backend and round, not one per workload
                self.log.debug("workbench: cannot refresh %s workloads: %s", backend, exc)
            except WorkbenchError as exc:
                self.log.debug("workbench: cannot refresh %s: %s", name, exc)
