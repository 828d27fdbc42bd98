"""One list+watch per resource type keeps every workload's objects current.

Never one poll per object: the tracker lists Jobs and pods once with the workbench label
selector and, while someone waits on a workload, watches each type from the list's
resourceVersion, listing again when the server answers 410 Gone. The number of API
requests does not grow with the number of workloads (benchmark B3).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ...errors import WorkbenchError
from .client import Expired, KubeClient


class Tracker:
    """A cache of the workbench's objects of some kinds, kept current by watches.

    Args:
        client: the API client.
        selector: the label selector every tracked object matches.
        kinds: the kinds to track.
        max_age: without running watches, a cache older than this is listed again.
    """

    def __init__(
        self,
        client: KubeClient,
        selector: str,
        kinds: Sequence[str] = ("Job", "Pod"),
        *,
        max_age: float = 1.0,
        watch_timeout: int = 60,
    ) -> None:
        self.client = client
        self.selector = selector
        self.kinds = tuple(kinds)
        self.max_age = max_age
        self.watch_timeout = watch_timeout
        self._objects: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in self.kinds}
        self._versions: dict[str, str] = {}
        self._listed_at: dict[str, float] = {}
        self._changed = threading.Condition()
        self._threads: dict[str, threading.Thread] = {}
        self._stopping = threading.Event()

    # -- reading ---------------------------------------------------------------------------
    def objects(
        self, kind: str, labels: dict[str, str] | None = None, *, fresh: bool = True
    ) -> list[dict[str, Any]]:
        """Tracked objects of ``kind`` whose labels include ``labels``.

        With ``fresh`` (the default) a stale cache is listed again first; inside a
        :meth:`wait` predicate pass ``fresh=False``.
        """
        if fresh:
            self.refresh(kind)
        with self._changed:
            items = list(self._objects[kind].values())
        if labels:
            items = [
                o for o in items if labels.items() <= (o.get("metadata", {}).get("labels") or {}).items()
            ]
        return items

    def refresh(self, kind: str) -> None:
        """List ``kind`` again unless a watch keeps it current or the list is fresh."""
        if self._watching(kind):
            return
        if time.monotonic() - self._listed_at.get(kind, -1e9) > self.max_age:
            self._list(kind)

    def relist(self, kind: str) -> None:
        """List ``kind`` now, even while a watch runs (its events may lag behind another kind's)."""
        self._list(kind)

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate`` holds, re-checking whenever a watched object changes."""
        self.watch()
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 1.0))
        return True

    # -- keeping current -------------------------------------------------------------------
    def _list(self, kind: str) -> None:
        items, version = self.client.list(kind, selector=self.selector)
        with self._changed:
            self._objects[kind] = {o["metadata"]["name"]: o for o in items}
            self._versions[kind] = version
            self._listed_at[kind] = time.monotonic()
            self._changed.notify_all()

    def _watching(self, kind: str) -> bool:
        thread = self._threads.get(kind)
        return thread is not None and thread.is_alive()

    def watch(self) -> None:
        """Start (once) a background watch per kind."""
        for kind in self.kinds:
            if self._watching(kind):
                continue
            if kind not in self._versions:
                self._list(kind)
            thread = threading.Thread(target=self._watch_loop, args=(kind,), name=f"workbench-watch-{kind}")
            thread.daemon = True
            self._threads[kind] = thread
            thread.start()

    def _watch_loop(self, kind: str) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                events = self.client.watch(
                    kind,
                    selector=self.selector,
                    resource_version=self._versions[kind],
                    timeout=self.watch_timeout,
                )
                for event, obj in events:
                    self._apply(kind, event, obj)
                    failures = 0
                    if self._stopping.is_set():
                        return
            except Expired:
                self._relist(kind)
            except WorkbenchError:
                failures += 1
                if self._stopping.wait(min(30.0, 0.5 * 2**failures)):
                    return
                self._relist(kind)

    def _relist(self, kind: str) -> None:
        with contextlib.suppress(WorkbenchError):  # the next round backs off and tries again
            self._list(kind)

    def _apply(self, kind: str, event: str, obj: dict[str, Any]) -> None:
        version = obj.get("metadata", {}).get("resourceVersion")
        with self._changed:
            if event == "BOOKMARK":
                pass
            elif event == "DELETED":
                self._objects[kind].pop(obj["metadata"]["name"], None)
            else:
                self._objects[kind][obj["metadata"]["name"]] = obj
            if version:
                self._versions[kind] = str(version)
            self._listed_at[kind] = time.monotonic()
            self._changed.notify_all()

    def stop(self) -> None:
        self._stopping.set()
