"""Object storage with one global resourceVersion counter, an event history and watchers.

Everything here runs on the emulator's event loop thread; methods are synchronous, so each
one is atomic with respect to the HTTP handlers and the controllers.
"""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

Key = tuple[str, str]  # (group, plural)
Obj = dict[str, Any]


@dataclass
class Event:
    rv: int
    key: Key
    namespace: str
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj


@dataclass(eq=False)
class Watcher:
    key: Key
    namespace: str | None
    accept: Callable[[Obj], bool]
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)

    def offer(self, event: Event) -> None:
        if event.key == self.key and self.namespace in (None, event.namespace) and self.accept(event.obj):
            self.queue.put_nowait(event)


class Store:
    def __init__(self, history_limit: int = 10_000) -> None:
        self.rv = 0
        self.objects: dict[Key, dict[tuple[str, str], Obj]] = {}
        self.history: deque[Event] = deque()
        self.history_limit = history_limit
        #: events with rv <= compacted are no longer retained
        self.compacted = 0
        self.watchers: set[Watcher] = set()
        self.uids: dict[str, tuple[Key, str, str]] = {}
        self.listeners: list[Callable[[Event], None]] = []

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    # reads -------------------------------------------------------------------------------

    def get(self, key: Key, namespace: str, name: str) -> Obj | None:
        return self.objects.get(key, {}).get((namespace, name))

    def list(self, key: Key, namespace: str | None = None) -> list[Obj]:
        items = self.objects.get(key, {})
        found = [obj for (ns, _), obj in items.items() if namespace is None or ns == namespace]
        return sorted(found, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    def by_uid(self, uid: str) -> Obj | None:
        where = self.uids.get(uid)
        return None if where is None else self.get(*where)

    def all_objects(self) -> Iterator[tuple[Key, Obj]]:
        for key, items in list(self.objects.items()):
            for obj in list(items.values()):
                yield key, obj

    # writes ------------------------------------------------------------------------------

    def put(self, key: Key, obj: Obj, *, added: bool) -> Obj:
        """Store ``obj`` (already complete but for resourceVersion) and record the event."""
        meta = obj["metadata"]
        rv = self.next_rv()
        meta["resourceVersion"] = str(rv)
        namespace = meta.get("namespace", "")
        self.objects.setdefault(key, {})[(namespace, meta["name"])] = obj
        self.uids[meta["uid"]] = (key, namespace, meta["name"])
        self._record(Event(rv, key, namespace, "ADDED" if added else "MODIFIED", copy.deepcopy(obj)))
        return obj

    def remove(self, key: Key, obj: Obj) -> Obj:
        meta = obj["metadata"]
        namespace = meta.get("namespace", "")
        self.objects.get(key, {}).pop((namespace, meta["name"]), None)
        self.uids.pop(meta.get("uid", ""), None)
        rv = self.next_rv()
        meta["resourceVersion"] = str(rv)
        self._record(Event(rv, key, namespace, "DELETED", copy.deepcopy(obj)))
        return obj

    def drop_kind(self, key: Key) -> None:
        """Forget every object of a resource type (its CRD was deleted)."""
        for obj in list(self.objects.get(key, {}).values()):
            self.remove(key, obj)
        self.objects.pop(key, None)

    def _record(self, event: Event) -> None:
        self.history.append(event)
        while len(self.history) > self.history_limit:
            self.compacted = self.history.popleft().rv
        for watcher in list(self.watchers):
            watcher.offer(event)
        for listener in list(self.listeners):
            listener(event)

    def compact(self) -> int:
        """Forget every retained event; watches from an older resourceVersion get 410."""
        self.history.clear()
        self.compacted = self.rv
        return self.rv

    # watches -----------------------------------------------------------------------------

    def since(self, rv: int, watcher: Watcher) -> list[Event] | None:
        """Retained events after ``rv`` that ``watcher`` wants; None if ``rv`` is too old."""
        if rv < self.compacted:
            return None
        out = []
        for event in self.history:
            wanted = event.key == watcher.key and watcher.namespace in (None, event.namespace)
            if event.rv > rv and wanted and watcher.accept(event.obj):
                out.append(event)
        return out

    def close_watchers(self) -> None:
        for watcher in list(self.watchers):
            watcher.queue.put_nowait(None)
