"""The endpoint controller: makes the running revisions match ``desired.json``.

Like a Deployment controller for processes on loopback. A revision that is desired but not
running gets its replicas started; once each answers ready, traffic shifts to the desired split
(until then the previous split stays, so the endpoint never goes dark). A revision no longer
desired and no longer routed is drained (no new requests, in-flight ones finish) and then its
replicas get SIGTERM. A revision whose replica dies or stays unready before the revision ever
served fails: it gets no traffic and its message is the replica's last stderr line. A replica
that dies after being ready is replaced (with a growing pause if it keeps dying). With an
autoscale range, each serving revision's replica count follows the in-flight requests it sees
(averaged over ~10 s) towards ``target_concurrency`` per replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from .serve_processes import DESIRED, Replica, ReplicaProcess, free_port, load_desired, read_meta, say
from .serve_proxy import Pool, ProxyApp

PROGRESS_DEADLINE = 120.0
WINDOW = 10.0  # seconds of samples behind the request rate and the autoscaler
SAMPLE_EVERY = 0.25
DRAIN_LIMIT = 60.0  # seconds a draining replica may keep requests before it is stopped anyway
SCALE_DOWN_DELAY = 10.0  # seconds after a scaling step before replicas are removed


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


@dataclass(eq=False)
class Revision:
    number: int
    payload: Path
    model_name: str
    env: dict[str, str]
    target: int
    state: str = "starting"  # starting | serving | draining | failed
    message: str = ""
    replicas: list[ReplicaProcess] = field(default_factory=list)  # alive and not being stopped
    ready: list[Replica] = field(default_factory=list)  # routable: shared with the pool
    next_index: int = 0
    crashes: int = 0
    restart_at: float = 0.0
    last_scale: float = 0.0
    load: deque[tuple[float, int]] = field(default_factory=deque)
    advice: deque[tuple[float, int]] = field(default_factory=deque)


class Controller:
    """Reconciles replicas and the pool's routes against ``RUN_DIR/desired.json``."""

    def __init__(
        self,
        run_dir: Path,
        app: ProxyApp,
        desired: dict[str, Any],
        early: dict[int, list[ReplicaProcess]] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.app = app
        self.pool: Pool = app.pool
        self.desired = desired
        self._stamp = _stamp(run_dir / DESIRED)
        self._reload = False
        self.revisions: dict[int, Revision] = {}
        self.draining: list[Revision] = []
        self.traffic: dict[int, int] = {}  # what the pool routes now
        self.wake = asyncio.Event()
        self.stopping = False
        self.rates: deque[tuple[float, int]] = deque()
        self._probe: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.processes: set[ReplicaProcess] = set()  # every replica process not known to be gone
        self.early = early or {}  # replicas started before the event loop, by revision
        self.processes.update(p for group in self.early.values() for p in group)
        #: a revision has served since the start; until then, a failed one ends the endpoint
        self.served = False
        #: why the endpoint ends (its first revision failed); set once, then on_fatal is called
        self.fatal: str | None = None
        self.on_fatal: Any = None

    # -- desired state -------------------------------------------------------------------------

    def ask_reload(self) -> None:
        """SIGHUP: read desired.json now."""
        self._reload = True
        self.wake.set()

    def _check_desired(self) -> None:
        stamp = _stamp(self.run_dir / DESIRED)
        if not self._reload and stamp == self._stamp:
            return
        self._reload, self._stamp = False, stamp
        try:
            desired = load_desired(self.run_dir)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            say(f"{DESIRED} ignored, the last good one stays: {exc}")
            return
        if desired != self.desired:
            self.desired = desired
            self.app.max_body = int(desired.get("max_body") or self.app.max_body)
            self.app.model_name = str(desired.get("model_name") or self.app.model_name)
            say(f"generation {desired.get('generation')}: {self.desired_traffic()}")

    def desired_traffic(self) -> dict[int, int]:
        return {int(r["revision"]): int(r.get("traffic", 0)) for r in self.desired.get("revisions", [])}

    def _payload(self, number: int) -> Path:
        for item in self.desired.get("revisions", []):
            if int(item["revision"]) == number:
                return self.run_dir / str(item.get("payload") or f"revisions/{number}")
        return self.run_dir / "revisions" / str(number)

    def _base_target(self) -> int:
        replicas = max(1, int(self.desired.get("replicas") or 1))
        bounds = self.desired.get("autoscale")
        if bounds:
            lead = self._lead()
            if lead is not None and lead in self.revisions:
                replicas = self.revisions[lead].target
            replicas = min(max(replicas, int(bounds[0])), int(bounds[1]))
        return replicas

    def _lead(self) -> int | None:
        """The revision with the most traffic now (the older one on a tie)."""
        routed = sorted(self.traffic.items(), key=lambda kv: (-kv[1], kv[0]))
        return routed[0][0] if routed else None

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        self._probe = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True),
            timeout=aiohttp.ClientTimeout(total=2.0),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self._spawn(self._sample())
        while not self.stopping:
            self._check_desired()
            self.reconcile()
            for group in self.early.values():  # started for revisions no longer desired
                for process in group:
                    self._spawn(process.stop())
            self.early.clear()
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), 0.5)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            say(f"internal error: {task.exception()!r}")

    async def _sample(self) -> None:
        while not self.stopping:
            now = time.monotonic()
            self.rates.append((now, self.pool.requests))
            while self.rates and now - self.rates[0][0] > WINDOW:
                self.rates.popleft()
            for rev in self.revisions.values():
                rev.load.append((now, sum(r.inflight for r in rev.ready)))
                while rev.load and now - rev.load[0][0] > WINDOW:
                    rev.load.popleft()
            await asyncio.sleep(SAMPLE_EVERY)

    def rps(self) -> float:
        if len(self.rates) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.rates[0], self.rates[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def reconcile(self) -> None:
        if self.stopping:
            return
        wanted = self.desired_traffic()
        now = time.monotonic()
        for number in wanted:
            if number not in self.revisions:
                self._create(number)
        for number, rev in list(self.revisions.items()):
            if rev.state == "starting" and len(rev.ready) >= rev.target:
                rev.state, rev.message = "serving", ""
                self.served = True
                say(f"revision {number} ready ({len(rev.ready)} replicas)")
        # traffic moves only once every desired revision serves; until then the old split stays
        if all(self.revisions[n].state == "serving" for n in wanted):
            routes = dict(wanted)
        else:
            routes = {n: w for n, w in self.traffic.items() if self._serving(n)}
        if routes != self.traffic:
            self.traffic = routes
            self.pool.set_routes([(n, w, self.revisions[n].ready) for n, w in sorted(routes.items())])
            say("traffic " + (", ".join(f"r{n}={w}%" for n, w in sorted(routes.items())) or "none"))
        for number, rev in list(self.revisions.items()):
            if number not in wanted and number not in routes:
                del self.revisions[number]
                if rev.state != "failed":
                    self._drain(rev)
        self._autoscale(wanted, now)
        for rev in self.revisions.values():
            if rev.state in ("starting", "serving"):
                self._scale(rev, now)

    def _serving(self, number: int) -> bool:
        rev = self.revisions.get(number)
        return rev is not None and rev.state == "serving"

    # -- revisions -----------------------------------------------------------------------------

    def _create(self, number: int) -> None:
        payload = self._payload(number)
        meta = read_meta(payload)
        env = {str(k): str(v) for k, v in (meta.get("env") or {}).items()}
        model_name = str(meta.get("model_name") or self.desired.get("model_name") or "model")
        rev = Revision(number, payload, model_name, env, target=self._base_target())
        self.revisions[number] = rev
        say(f"starting revision {number} ({rev.target} replicas)")
        if not (payload / "meta.json").is_file():
            self._fail(rev, f"revision {number} has no meta.json in {payload.name}")
            return
        early = self.early.pop(number, [])
        for process in early:
            self._start_replica(rev, process)
        for _ in range(rev.target - len(early)):
            self._start_replica(rev)

    def _start_replica(self, rev: Revision, replica: ReplicaProcess | None = None) -> None:
        if replica is None:
            replica = ReplicaProcess(rev.number, rev.next_index, free_port())
            replica.spawn(rev.payload, rev.env)
        rev.next_index = max(rev.next_index, replica.index) + 1
        rev.replicas.append(replica)
        self.processes.add(replica)
        self._spawn(self._run_replica(rev, replica))

    async def _run_replica(self, rev: Revision, replica: ReplicaProcess) -> None:
        self._spawn(replica.attach(lambda r: self._on_exit(rev, r)))
        if replica.proc is None:
            return
        deadline = replica.started + float(self.desired.get("progress_deadline") or PROGRESS_DEADLINE)
        assert self._probe is not None
        problem = await replica.wait_ready(self._probe, rev.model_name, deadline)
        if problem is None and not replica.stopping and rev.state != "failed":
            rev.ready.append(replica.proxy)
            rev.crashes = 0
            self.wake.set()
        elif problem is not None and not replica.exited and not replica.stopping:
            await self._lost(rev, replica, problem)  # unready past the deadline
            await replica.stop()

    def _on_exit(self, rev: Revision, replica: ReplicaProcess) -> None:
        self.processes.discard(replica)
        if replica.proxy in rev.ready:
            rev.ready.remove(replica.proxy)
        if replica.stopping or self.stopping:
            return
        self._spawn(self._lost(rev, replica, replica.reason()))

    async def _lost(self, rev: Revision, replica: ReplicaProcess, why: str) -> None:
        """A replica died or never got ready, without being asked to stop."""
        if replica in rev.replicas:
            rev.replicas.remove(replica)
        if replica.proxy in rev.ready:
            rev.ready.remove(replica.proxy)
        if rev.state == "starting":
            self._fail(rev, why)
        elif rev.state == "serving":
            rev.crashes += 1
            pause = min(30.0, 0.5 * 2 ** (rev.crashes - 1))
            rev.restart_at = time.monotonic() + pause
            rev.message = f"{why} (replaced in {pause:g}s)"
            say(f"replica {replica.name} lost: {why}; replacing it in {pause:g}s")
            self._spawn(self._wake_later(pause))
        self.wake.set()

    async def _wake_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self.wake.set()

    def _fail(self, rev: Revision, why: str) -> None:
        rev.state, rev.message = "failed", why
        say(f"revision {rev.number} failed: {why}")
        for replica in list(rev.replicas):
            self._spawn(replica.stop())
        rev.replicas.clear()
        rev.ready.clear()
        if (
            not self.served
            and self.fatal is None
            and not any(r.state == "starting" for r in self.revisions.values())
        ):  # nothing ever served: the endpoint fails with its model's error, as a pod would
            self.fatal = f"revision {rev.number} failed: {why}"
            if self.on_fatal is not None:
                self.on_fatal()
        self.wake.set()

    def _drain(self, rev: Revision) -> None:
        rev.state = "draining"
        self.draining.append(rev)
        say(f"draining revision {rev.number}")

        async def drain() -> None:
            await asyncio.gather(*(self._retire(rev, r) for r in list(rev.replicas)))
            if rev in self.draining:
                self.draining.remove(rev)
            say(f"revision {rev.number} stopped")
            self.wake.set()

        self._spawn(drain())

    async def _retire(self, rev: Revision, replica: ReplicaProcess) -> None:
        """Take a replica out of the routes, let its in-flight requests finish, stop it."""
        if replica.proxy in rev.ready:
            rev.ready.remove(replica.proxy)
        replica.stopping = True
        limit = time.monotonic() + DRAIN_LIMIT
        while replica.proxy.inflight > 0 and time.monotonic() < limit:
            await asyncio.sleep(0.02)
        await replica.stop()
        if replica in rev.replicas:
            rev.replicas.remove(replica)
        self.wake.set()

    # -- scaling -------------------------------------------------------------------------------

    def _scale(self, rev: Revision, now: float) -> None:
        alive = [r for r in rev.replicas if not r.stopping]
        if len(alive) < rev.target and now >= rev.restart_at:
            for _ in range(rev.target - len(alive)):
                self._start_replica(rev)
        elif len(alive) > rev.target:
            surplus = sorted(alive, key=lambda r: (r.ready, r.proxy.inflight))[: len(alive) - rev.target]
            for replica in surplus:
                rev.replicas.remove(replica)
                self._spawn(self._retire(rev, replica))

    def _autoscale(self, wanted: dict[int, int], now: float) -> None:
        bounds = self.desired.get("autoscale")
        replicas = max(1, int(self.desired.get("replicas") or 1))
        for number, rev in self.revisions.items():
            if number not in wanted or rev.state == "failed":
                continue
            if not bounds:
                rev.target = replicas
                continue
            low, high = int(bounds[0]), int(bounds[1])
            if rev.state != "serving" or not rev.load or now - rev.load[0][0] < 2.0:
                rev.target = min(max(rev.target, low), high)
                continue
            aim = max(float(self.desired.get("target_concurrency") or 4.0), 0.01)
            average = sum(n for _, n in rev.load) / len(rev.load)
            advice = min(max(math.ceil(average / aim - 0.1), low), high)  # 10 % tolerance
            rev.advice.append((now, advice))
            while rev.advice and now - rev.advice[0][0] > WINDOW:
                rev.advice.popleft()
            if advice > rev.target:
                new = advice
            elif now - rev.last_scale >= SCALE_DOWN_DELAY:
                new = min(rev.target, max(a for _, a in rev.advice))  # the highest advice of ~10 s
            else:
                new = rev.target
            new = min(max(new, low), high)
            if new != rev.target:
                say(
                    f"autoscale revision {number}: {rev.target} -> {new} replicas "
                    f"({average:.1f} requests in flight, target {aim:g} each)"
                )
                rev.target, rev.last_scale = new, now

    # -- the end -------------------------------------------------------------------------------

    async def shutdown(self, grace: float) -> None:
        """Stop every replica (the server has stopped taking requests and drained)."""
        self.stopping = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(r.stop(grace) for r in list(self.processes)), return_exceptions=True)
        if self._probe is not None:
            await self._probe.close()
