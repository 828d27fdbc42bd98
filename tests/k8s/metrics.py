"""metrics-server for the API emulator: ``metrics.k8s.io/v1beta1`` from the process kubelet's processes.

    install_metrics(emulator)              # PodMetrics and NodeMetrics, scraped every second
    install_metrics(emulator, period=0.5)  # metrics-server's --metric-resolution (its default: 15 s)

Without it the emulator serves no ``metrics.k8s.io`` group, as a cluster without metrics-server
(``kubectl top`` then says the Metrics API is not available). With it, discovery lists the group
and its two resources (``pods``: PodMetrics, namespaced; ``nodes``: NodeMetrics, cluster-scoped),
both with the verbs ``get`` and ``list`` only (a watch is refused: 405).

Every ``period`` the scraper reads each running container's whole process tree with psutil:
the CPU time of the live processes and of the children they reaped, and their resident memory.
As metrics-server does, a container's CPU usage is the rate between its last two readings,
``window`` is the time between them and ``timestamp`` the time of the last; a pod is reported
once each of its running containers has two readings (from its second scrape on). Timestamps are
to the second, as metav1.Time writes them: with a ``period`` under a second, two scrapes can share
one (a reader that keeps one reading per timestamp then misses windows). Quantities are
written canonically: CPU in nanocores (``"250m"``, ``"1234567n"``), memory in bytes with the
largest exact binary suffix (``"300Mi"``, ``"123456Ki"``). A PodMetrics carries its pod's labels
(list takes a ``labelSelector``, and a ``fieldSelector`` on ``metadata.name``/``metadata.namespace``);
NodeMetrics add up the pods bound to each node.
"""

from __future__ import annotations

import contextlib
import copy
import time
from typing import Any

import psutil

from .cluster import PODS, now
from .errors import ApiError, not_found
from .resources import ResourceType
from .scheduler import NODES
from .selectors import parse_field_selector, parse_label_selector
from .store import Obj

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
POD_METRICS = ResourceType(GROUP, VERSION, "pods", "PodMetrics", verbs=("get", "list"))
NODE_METRICS = ResourceType(GROUP, VERSION, "nodes", "NodeMetrics", namespaced=False, verbs=("get", "list"))
_BINARY = (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))
_DECIMAL = (("", 10**9), ("m", 10**6), ("u", 10**3))


def install_metrics(emulator: Any, period: float = 1.0) -> MetricsServer:
    """Serve ``metrics.k8s.io`` on ``emulator``, scraping its pods' processes every ``period`` seconds."""
    server = MetricsServer(emulator, period)

    def install() -> None:
        for rt in (POD_METRICS, NODE_METRICS):
            emulator.registry.add(rt)
            emulator.computed[rt.key] = server.serve

    emulator.call(install)
    emulator.add_controller(server.scrape)
    return server


def cpu_quantity(nanocores: int) -> str:
    """``250000000`` → ``"250m"``; exact, with the largest decimal suffix that keeps it whole."""
    for suffix, scale in _DECIMAL:
        if nanocores % scale == 0:
            return f"{nanocores // scale}{suffix}"
    return f"{nanocores}n"


def memory_quantity(size: int) -> str:
    """``314572800`` → ``"300Mi"``; exact, with the largest binary suffix that keeps it whole."""
    for suffix, scale in _BINARY:
        if size and size % scale == 0:
            return f"{size // scale}{suffix}"
    return str(size)


def duration(seconds: float) -> str:
    """A Go duration as metav1.Duration writes one: ``"1.5s"``, ``"1m0.25s"``."""
    minutes, rest = divmod(round(seconds, 6), 60)
    text = f"{rest:.6f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


def tree_reading(pid: int) -> tuple[float, int] | None:
    """CPU seconds and resident bytes of the process tree under ``pid``; None when it is gone.

    A live process's CPU time includes what its reaped children used (``children_*``); a child
    that is still alive is counted on its own, so nothing is counted twice.
    """
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    cpu, rss = 0.0, 0
    for proc in procs:
        with contextlib.suppress(psutil.Error), proc.oneshot():
            times, memory = proc.cpu_times(), proc.memory_info()
            cpu += times.user + times.system + times.children_user + times.children_system
            rss += memory.rss
    return cpu, rss


class MetricsServer:
    """The scraper (a controller on the emulator's loop) and the API's answers."""

    def __init__(self, emulator: Any, period: float) -> None:
        self.em = emulator
        self.period = period
        self.scraped_at = 0.0
        self.stamp = now()
        #: (pod uid, container, pid) → (time, CPU seconds) of the last reading
        self._last: dict[tuple[str, str, int], tuple[float, float]] = {}
        #: pod uid → (its PodMetrics, its node, nanocores, bytes) from the last scrape
        self._pods: dict[str, tuple[Obj, str, int, int]] = {}

    # scraping (on the emulator's loop) ----------------------------------------------------

    def scrape(self, emulator: Any) -> None:
        t = time.time()
        if t - self.scraped_at < self.period:
            return
        self.scraped_at, self.stamp = t, now()
        last: dict[tuple[str, str, int], tuple[float, float]] = {}
        pods: dict[str, tuple[Obj, str, int, int]] = {}
        for run in list(self.em.kubelet.runs.values()):
            pod = self.em.store.get(PODS, run.namespace, run.name)
            running = [c for c in run.main if c.running and c.proc is not None]
            if run.gone or not running or pod is None or pod["metadata"]["uid"] != run.uid:
                continue
            containers, windows, total_cpu, total_memory = [], [], 0, 0
            for c in running:
                assert c.proc is not None
                reading = tree_reading(c.proc.pid)
                if reading is None:  # it just ended
                    break
                cpu, rss = reading
                key = (run.uid, c.name, c.proc.pid)
                last[key] = (t, cpu)
                if key not in self._last:  # a rate needs two readings
                    break
                before_t, before_cpu = self._last[key]
                windows.append(max(t - before_t, 1e-3))
                nanocores = round(max(0.0, cpu - before_cpu) / windows[-1] * 1e9)
                total_cpu, total_memory = total_cpu + nanocores, total_memory + rss
                usage = {"cpu": cpu_quantity(nanocores), "memory": memory_quantity(rss)}
                containers.append({"name": c.name, "usage": usage})
            else:
                meta = {
                    "name": run.name,
                    "namespace": run.namespace,
                    "creationTimestamp": self.stamp,
                    "labels": dict(pod["metadata"].get("labels") or {}),
                }
                metrics = {
                    "kind": "PodMetrics",
                    "apiVersion": API_VERSION,
                    "metadata": meta,
                    "timestamp": self.stamp,
                    "window": duration(max(windows)),
                    "containers": containers,
                }
                node = (pod.get("spec") or {}).get("nodeName", "")
                pods[run.uid] = (metrics, node, total_cpu, total_memory)
        self._last, self._pods = last, pods

    # serving (on the emulator's loop) -----------------------------------------------------

    def serve(
        self, rt: ResourceType, verb: str, namespace: str | None, name: str | None, query: dict[str, str]
    ) -> Obj:
        """The answer to a ``get`` or ``list`` of PodMetrics or NodeMetrics (``namespace`` None: all)."""
        if verb not in ("get", "list"):
            raise ApiError(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
        items = self._pod_items(namespace) if rt.plural == "pods" else self._node_items()
        if verb == "get":
            found = next((i for i in items if i["metadata"]["name"] == name), None)
            if found is None:
                raise not_found(rt.plural, GROUP, name or "")
            return found
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"), "podmetrics")
        selected = [i for i in items if labels(i["metadata"].get("labels") or {}) and fields(i)]
        return {"kind": rt.list_kind, "apiVersion": API_VERSION, "metadata": {}, "items": selected}

    def _pod_items(self, namespace: str | None) -> list[Obj]:
        items = []
        for uid, (metrics, *_) in self._pods.items():
            meta = metrics["metadata"]
            pod = self.em.store.get(PODS, meta["namespace"], meta["name"])
            if pod is not None and pod["metadata"]["uid"] == uid and namespace in (None, meta["namespace"]):
                items.append(copy.deepcopy(metrics))
        return items

    def _node_items(self) -> list[Obj]:
        items = []
        for node in self.em.store.list(NODES):
            name = node["metadata"]["name"]
            on_node = [(cpu, memory) for _, where, cpu, memory in self._pods.values() if where == name]
            usage = {
                "cpu": cpu_quantity(sum(cpu for cpu, _ in on_node)),
                "memory": memory_quantity(sum(memory for _, memory in on_node)),
            }
            meta = {
                "name": name,
                "creationTimestamp": self.stamp,
                "labels": dict(node["metadata"].get("labels") or {}),
            }
            items.append(
                {
                    "kind": "NodeMetrics",
                    "apiVersion": API_VERSION,
                    "metadata": meta,
                    "timestamp": self.stamp,
                    "window": duration(self.period),
                    "usage": usage,
                }
            )
        return items
