"""An HTTP Kubernetes API emulator on loopback, in a background thread with its own event loop.

    emu = Emulator().start()      # emu.url is http://127.0.0.1:PORT
    ...                           # talk to it with the kubernetes client or kubectl
    emu.stop()                    # kills every pod process, removes its temp dirs

Methods called from the test thread run on the emulator's loop (``call``), so they are safe
to use while requests are in flight.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import shutil
import tempfile
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from .api import Api
from .cluster import NAMESPACES, Cluster
from .controllers import JobController
from .cronjobs import CronJobController
from .deployments import DeploymentController
from .faults import Fault, RequestLog
from .kubelet import Kubelet
from .probes import Prober
from .proxy import ServiceProxy
from .replicasets import ReplicaSetController
from .resources import Registry, crd_document
from .scheduler import DEFAULT_NODES, NODES, Scheduler, node_object
from .services import EndpointsController
from .store import Obj, Store

T = TypeVar("T")


class Emulator(RequestLog):
    def __init__(
        self,
        *,
        version: str = "v1.33.0",
        history_limit: int = 10_000,
        user: str = "system:serviceaccount:default:workbench",
        root: str | Path | None = None,
        tick: float = 0.05,
        probe_scale: float = 1.0,
    ) -> None:
        self.version = version
        self.user = user
        self.tick = tick
        self.registry = Registry.default()
        self.store = Store(history_limit)
        self.cluster = Cluster(self.store, self.registry)
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="k8s-emulator-") if root is None else root)
        self.pvc_root = self.root / "pvcs"
        #: images whose pull fails (ImagePullBackOff)
        self.bad_images: set[str] = set()
        #: image → ENTRYPOINT, for containers that give no command
        self.image_entrypoints: dict[str, list[str]] = {}
        self.restart_delay = 0.2
        #: set in every container process's environment, under the pod's own env (as a node's
        #: container runtime sets defaults)
        self.node_env: dict[str, str] = {}
        #: multiplies probes' initialDelaySeconds and periodSeconds (0.1: ten times faster)
        self.probe_scale = probe_scale
        #: (verb, group, resource) triples that RBAC denies; "*" matches anything
        self.denied: set[tuple[str, str, str]] = set()
        self.internal_errors: list[str] = []
        self.extra_controllers: list[Callable[[Emulator], None]] = []
        #: (group, plural) → the answer to a request of a resource that is computed, not stored
        #: (an aggregated API such as metrics.k8s.io): ``serve(rt, verb, namespace, name, query)``
        self.computed: dict[tuple[str, str], Callable[..., dict[str, Any]]] = {}
        self.closing = False
        self.url = ""
        self._requests: list[tuple[str, str, dict[str, str]]] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        pods_rt = self.registry.find("", "v1", "pods")
        jobs_rt = self.registry.find("batch", "v1", "jobs")
        cronjobs_rt = self.registry.find("batch", "v1", "cronjobs")
        assert pods_rt is not None and jobs_rt is not None and cronjobs_rt is not None
        self.scheduler = Scheduler(self.cluster, pods_rt)
        self.kubelet = Kubelet(self.cluster, pods_rt, self.root, self)
        self.jobs = JobController(self.cluster, jobs_rt, pods_rt)
        #: its ``clock`` may be replaced by a test; see also :meth:`fire_cronjob`
        self.cronjobs = CronJobController(self.cluster, cronjobs_rt, jobs_rt)
        rs_rt, deploy_rt = (self.registry.find("apps", "v1", p) for p in ("replicasets", "deployments"))
        assert rs_rt is not None and deploy_rt is not None
        self.deployments = DeploymentController(self.cluster, deploy_rt, rs_rt)
        self.replicasets = ReplicaSetController(self.cluster, rs_rt, pods_rt)
        self.endpoints = EndpointsController(self.cluster)
        self.prober = Prober(self)
        self.proxy = ServiceProxy(self)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._wake: asyncio.Event | None = None
        self._controllers: asyncio.Task[None] | None = None
        self._bootstrap()

    def _bootstrap(self) -> None:
        namespaces = self.registry.find("", "v1", "namespaces")
        assert namespaces is not None
        for name in ("default", "kube-system", "kube-public"):
            self.cluster.create(namespaces, "", {"metadata": {"name": name}})
        self._set_nodes(DEFAULT_NODES)

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> Emulator:
        ready: Future[str] = Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="k8s-emulator", daemon=True)
        self._thread.start()
        self.url = ready.result(timeout=30)
        atexit.register(self.stop)  # no pod process outlives the interpreter, even without stop()
        return self

    def _run(self, ready: Future[str]) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(ready))
            loop.run_forever()
        except BaseException as exc:  # pragma: no cover - surfaced through ready
            if not ready.done():
                ready.set_exception(exc)
        finally:
            loop.close()

    async def _serve(self, ready: Future[str]) -> None:
        self._wake = asyncio.Event()
        self.store.listeners.append(lambda event: self._wake.set() if self._wake else None)
        self._runner = web.AppRunner(Api(self).app(), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self._controllers = asyncio.get_running_loop().create_task(self._control())
        ready.set_result(f"http://127.0.0.1:{port}")

    async def _control(self) -> None:
        assert self._wake is not None
        while not self.closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tick)
            self._wake.clear()
            for _ in range(20):
                before = self.store.rv
                self._pass()
                if self.store.rv == before:
                    break
                await asyncio.sleep(0)

    def wake(self) -> None:
        """Run the control loop now (call on the loop's thread)."""
        if self._wake is not None:
            self._wake.set()

    def add_controller(self, reconcile: Callable[[Emulator], None]) -> None:
        """Run ``reconcile(emulator)`` on every pass of the control loop (on the loop's thread).

        It may read ``emulator.store`` and change objects through ``emulator.cluster``
        (create/update/patch/delete/write/event); a pass runs after every change and every tick.
        """
        self.extra_controllers.append(reconcile)

    def _pass(self) -> None:
        extra = [lambda fn=fn: fn(self) for fn in list(self.extra_controllers)]
        for step in (
            self.scheduler.sync,
            self.kubelet.sync,
            self.cronjobs.sync,
            self.jobs.sync,
            self.deployments.sync,
            self.replicasets.sync,
            self.endpoints.sync,
            self.prober.sync,
            self.cluster.collect_garbage,
            *extra,
        ):
            try:
                step()
            except Exception:
                self.internal_errors.append(traceback.format_exc())

    def stop(self) -> None:
        """Stop serving, kill every pod's process group and remove the temp root. Idempotent."""
        atexit.unregister(self.stop)
        loop = self._loop
        if loop is not None and loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=15)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=15)
        self.kubelet.shutdown()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    async def _shutdown(self) -> None:
        self.closing = True
        self.store.close_watchers()
        await self.prober.close()
        await self.proxy.close()
        if self._controllers is not None:
            self._controllers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._controllers
        if self._runner is not None:
            await self._runner.cleanup()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the emulator's loop (or directly before start/after stop)."""
        loop = self._loop
        if loop is None or not loop.is_running() or threading.current_thread() is self._thread:
            return fn()

        async def run() -> T:
            result = fn()
            if self._wake is not None:
                self._wake.set()
            return result

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=30)

    def deny(self, verb: str, resource: str, group: str = "") -> None:
        """Make RBAC deny ``verb`` on ``resource`` (e.g. "pods/log") of ``group`` ("*" = any)."""
        self.denied.add((verb, group, resource))

    def is_denied(self, verb: str, group: str, resource: str) -> bool:
        for v, g, r in list(self.denied):
            if v in ("*", verb) and g in ("*", group) and r in ("*", resource):
                return True
        return False

    # cluster shape -----------------------------------------------------------------------

    def set_nodes(self, nodes: list[dict[str, Any]]) -> None:
        """Replace the nodes: each {"name", "allocatable": {...}, "labels": {...}, "taints": [...]}."""
        self.call(lambda: self._set_nodes(nodes))

    def _set_nodes(self, nodes: list[dict[str, Any]]) -> None:
        rt = self.registry.find("", "v1", "nodes")
        assert rt is not None
        for old in self.store.list(NODES):
            self.store.remove(NODES, old)
        for node in nodes:
            doc = node_object(
                node["name"],
                node.get("allocatable") or {},
                node.get("labels"),
                node.get("taints"),
                self.version,
            )
            self.cluster.create(rt, "", doc)

    def add_crd(self, group: str, version: str, plural: str, kind: str, namespaced: bool = True) -> Obj:
        """Register a custom resource (through a CustomResourceDefinition object)."""
        rt = self.registry.find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert rt is not None
        doc = crd_document(group, version, plural, kind, namespaced)
        return self.call(lambda: self.cluster.view(rt, self.cluster.create(rt, "", doc)))

    def compact_history(self) -> int:
        """Forget the watch history; returns the resourceVersion it was compacted at."""
        return self.call(self.store.compact)

    @property
    def history_limit(self) -> int:
        return self.store.history_limit

    @history_limit.setter
    def history_limit(self, value: int) -> None:
        self.store.history_limit = value

    # inspection (for tests) --------------------------------------------------------------

    def get(self, plural: str, name: str, namespace: str = "default", group: str = "") -> Obj | None:
        """A copy of a stored object, or None."""

        def find() -> Obj | None:
            rt = next(
                (
                    t
                    for (g, _), by in self.registry.types.items()
                    if g == group
                    for p, t in by.items()
                    if p == plural
                ),
                None,
            )
            obj = None if rt is None else self.store.get(rt.key, namespace if rt.namespaced else "", name)
            return None if obj is None or rt is None else self.cluster.view(rt, obj)

        return self.call(find)

    def pids(self, name: str, namespace: str = "default") -> dict[str, int]:
        """container name → pid of the pod's current processes (started ones only)."""

        def find() -> dict[str, int]:
            run = self.kubelet.find(namespace, name)
            if run is None:
                return {}
            return {c.name: c.proc.pid for c in run.containers if c.proc is not None}

        return self.call(find)

    def disrupt(
        self,
        name: str,
        namespace: str = "default",
        reason: str = "PreemptionByScheduler",
        message: str = "Preempted in order to admit critical pod",
    ) -> bool:
        """Evict or preempt a running pod as the cluster does: it gets the ``DisruptionTarget``
        condition (``reason``), its processes are killed, and it ends Failed; False when no
        such pod runs here."""
        return self.call(lambda: self.kubelet.disrupt(namespace, name, reason, message))

    def pod_dir(self, name: str, namespace: str = "default") -> Path | None:
        """The pod's directory here (rootfs/ holds its volumes, logs/ its output)."""
        run = self.call(lambda: self.kubelet.find(namespace, name))
        return None if run is None else run.dir

    def pvc_dir(self, claim: str, namespace: str = "default") -> Path:
        """Where a persistentVolumeClaim's data lives (shared by every pod that mounts it)."""
        path = self.pvc_root / namespace / claim
        path.mkdir(parents=True, exist_ok=True)
        return path

    def fire_cronjob(self, name: str, namespace: str = "default") -> str | None:
        """Start a CronJob's next scheduled run now instead of at its time; the Job's name.

        The Job is the one the controller makes when the time comes (named
        ``<cronjob>-<scheduled minute since the epoch>``); None when it was not started
        (``concurrencyPolicy: Forbid`` and a run still active). KeyError: no such CronJob.
        """
        return self.call(lambda: self.cronjobs.fire(namespace, name))

    def live_pids(self) -> list[int]:
        """Pids of pod processes that are still running."""

        def find() -> list[int]:
            return [
                c.proc.pid
                for r in self.kubelet.runs.values()
                for c in r.containers
                if c.proc is not None and c.proc.poll() is None
            ]

        return self.call(find)

    def namespaces(self) -> list[str]:
        return self.call(lambda: [o["metadata"]["name"] for o in self.store.list(NAMESPACES)])
