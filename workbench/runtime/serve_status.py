"""The endpoint's status, as the store record's ``info`` shows it to ``ls``, ``describe`` and the sidebar.

Written by the router on every change, at most about twice a second, merged over what the record's
``info`` already holds (the service keeps its own keys there). Store writes run on one thread of
their own so the event loop that proxies requests never waits on SQLite.
"""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import WorkbenchError
from ..store import Store
from .serve_control import Controller
from .serve_processes import say

MIN_INTERVAL = 0.5  # seconds between two writes


def status(ctl: Controller) -> dict[str, Any]:
    """What the record's info shows about the endpoint (without its url)."""
    wanted = ctl.desired_traffic()
    live = sorted(((n, w) for n, w in ctl.traffic.items() if w > 0), key=lambda kv: (-kv[1], kv[0]))
    known = sorted([*ctl.revisions.values(), *ctl.draining], key=lambda r: (r.number, r.state))
    rows = [
        {
            "revision": rev.number,
            "ready": len(rev.ready),
            "desired": 0 if rev.state == "draining" else rev.target,
            "traffic": ctl.traffic.get(rev.number, 0),
            "state": rev.state,
            "message": rev.message,
        }
        for rev in known
    ]
    return {
        "model_name": ctl.app.model_name,
        "revision": live[0][0] if live else None,
        "canary": live[1][0] if len(live) == 2 else None,
        "traffic": {str(n): w for n, w in sorted(ctl.traffic.items())},
        "ready": sum(len(rev.ready) for rev in ctl.revisions.values() if rev.state != "failed"),
        "desired": sum(ctl.revisions[n].target for n in wanted if n in ctl.revisions),
        "rps": round(ctl.rps(), 1),
        "generation": ctl.desired.get("generation"),
        "rollout": rollout(ctl, wanted),
        "revisions": rows,
    }


def rollout(ctl: Controller, wanted: dict[int, int]) -> dict[str, str]:
    """The phase of the change to the desired generation, with a one-line message."""
    revs = [ctl.revisions[n] for n in sorted(wanted) if n in ctl.revisions]
    failed = [rev for rev in revs if rev.state == "failed"]
    if failed:
        return {"phase": "failed", "message": f"revision {failed[0].number} failed: {failed[0].message}"}
    waiting = [rev for rev in revs if rev.state != "serving" or len(rev.ready) < rev.target]
    if len(revs) < len(wanted):
        return {"phase": "progressing", "message": "starting"}
    if waiting:
        rev = waiting[0]
        return {
            "phase": "progressing",
            "message": f"revision {rev.number}: {len(rev.ready)} of {rev.target} replicas ready",
        }
    old = sorted({rev.number for rev in ctl.draining} | (set(ctl.revisions) - set(wanted)))
    if old or ctl.traffic != wanted:
        return {"phase": "progressing", "message": f"stopping revision {', '.join(map(str, old))}"}
    split = ", ".join(f"revision {n} {w}%" for n, w in sorted(wanted.items(), key=lambda kv: (-kv[1], kv[0])))
    return {"phase": "complete", "message": f"serving {split}" if split else "no revision desired"}


class StatusWriter:
    """Merges the status into the record's info whenever it changes (at most ~2/s)."""

    def __init__(self, workload_id: str, url: str) -> None:
        self.workload_id = workload_id
        self.url = url
        self._store: Store | None = None
        self._last: dict[str, Any] | None = None
        self._last_time = 0.0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="serve-status")
        self._warned = False
        home = os.environ.get("WORKBENCH_HOME")
        self._db = Path(home) / "workbench.db" if home else None

    def _write(self, info: dict[str, Any]) -> None:
        if self._db is None or not self._db.exists():
            raise WorkbenchError(f"no store to write the status to ({self._db or 'WORKBENCH_HOME unset'})")
        if self._store is None:
            self._store = Store(self._db)
        if not self._store.merge_info(self.workload_id, None, info):  # atomic: other keys stay
            self._store.get(self.workload_id)  # gone: NotFound, as before

    async def write(self, info: dict[str, Any]) -> None:
        info = {"url": self.url, **info}
        self._last, self._last_time = info, time.monotonic()
        try:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._write, info)
        except (WorkbenchError, OSError) as exc:
            if not self._warned:
                say(f"status not recorded: {exc}")
                self._warned = True

    async def run(self, ctl: Controller) -> None:
        """Follow the controller until cancelled."""
        while True:
            now = time.monotonic()
            current = {"url": self.url, **status(ctl)}
            if current != self._last and now - self._last_time >= MIN_INTERVAL:
                await self.write(current)
            await asyncio.sleep(0.1)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self._store is not None:
            self._store.close()
