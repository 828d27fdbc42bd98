"""``GET <base_url>/workbench/metrics``: the workloads in Prometheus' text format.

Authenticated the way jupyter_server treats its own ``/metrics``: any logged-in user (a token
in the ``Authorization: token …`` or ``Authorization: Bearer …`` header, or ``?token=``), and
nobody else unless ``ServerApp.authenticate_prometheus`` is False, in which case anyone may
read it. No authorizer check, as there: it is read-only and names no more than the sidebar.

Every scrape reads the shared store (no gauges are set as things happen, so what any
process launched is counted, whichever process launched it). Metrics:

``workbench_workloads{kind, backend, status}`` (gauge)
    Workload records by status; every status of a (kind, backend) pair seen is written, 0 too.
``workbench_launches_total{kind, backend}`` (counter)
    Workloads launched (one per record).
``workbench_launch_outcomes_total{kind, backend, outcome}`` (counter)
    Workloads that ended, by outcome: succeeded, failed, timed_out (failed on their time
    limit), cancelled.
``workbench_launch_to_running_seconds{kind, backend}`` (histogram)
    From the launch (record created) to running (started).
``workbench_run_duration_seconds{kind, backend, outcome}`` (histogram)
    From running (started; created when it never ran) to its end, of ended workloads.
``workbench_workload_cpu_cores``, ``workbench_workload_memory_bytes``,
``workbench_workload_gpu_utilization_ratio``, ``workbench_workload_gpu_memory_bytes``
``{workload, kind, backend}`` (gauges)
    The last usage sample of each *running* workload that has one: CPU in cores (1 = one core
    busy), resident memory, GPU utilisation (0 to 1) and memory of its granted GPUs. No series
    stays behind for a finished workload, and at most :data:`MAX_USAGE_SERIES` workloads (the
    newest) get them; ``workbench_usage_series_dropped`` says how many running ones did not.

The counters and histograms are derived from the records, so they survive server restarts
and count launches made while no server ran. Deleting records would lower them; this process
remembers what it counted of records deleted since it started, so they never go down while it
runs (a restart recounts from the records left, which Prometheus takes for a counter reset).
A separate counter table was not kept: it would need every launching process (kernel, CLI,
supervisor) to write it, and a record is already that write.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import prometheus_client
from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from tornado import web

from ..errors import WorkbenchError
from ..store import ACTIVE, FAILED, FINAL, RUNNING, Store, Workload

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from ..service import Service
    from .app import WorkbenchApp

#: The most running workloads that get usage gauges (the newest; the rest are counted as dropped).
MAX_USAGE_SERIES = 500
#: Histogram bounds, in seconds: from launch to running (an image pull may take minutes) …
LAUNCH_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
#: … and of a whole run (seconds to a day).
RUN_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0)
OUTCOMES = ("succeeded", "failed", "timed_out", "cancelled")
STATUSES = (*ACTIVE, *FINAL)

Labels = tuple[str, ...]
#: one record's contribution to a series: its labels and the value it observes (None: just one)
Observation = tuple[Labels, float | None]
#: a record instance: its id and creation time (a record deleted and made again is another one)
Key = tuple[str, float]


def outcome(workload: Workload) -> str:
    """How an ended workload ended: its status, or ``timed_out`` when it failed on its time limit."""
    if workload.status == FAILED and workload.message.startswith("timed out"):
        return "timed_out"
    return workload.status


@dataclass
class Tally:
    """What a series has counted: observations, their sum, and how many fell in each bucket."""

    bounds: tuple[float, ...] = ()
    count: int = 0
    total: float = 0.0
    per_bucket: list[int] = field(default_factory=list)

    def add(self, value: float | None) -> None:
        self.count += 1
        if value is None:
            return
        if not self.per_bucket:
            self.per_bucket = [0] * (len(self.bounds) + 1)
        self.total += value
        self.per_bucket[bisect.bisect_left(self.bounds, value)] += 1

    def merged(self, other: Tally) -> Tally:
        out = Tally(self.bounds)
        out.count, out.total = self.count + other.count, self.total + other.total
        width = len(self.bounds) + 1
        mine, theirs = self.per_bucket or [0] * width, other.per_bucket or [0] * width
        out.per_bucket = [a + b for a, b in zip(mine, theirs, strict=True)]
        return out

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative ``(le, count)`` pairs, +Inf last, as the exposition wants them."""
        counts = self.per_bucket or [0] * (len(self.bounds) + 1)
        running, out = 0, []
        for bound, n in zip((*self.bounds, math.inf), counts, strict=True):
            running += n
            out.append(("+Inf" if bound == math.inf else repr(bound), float(running)))
        return out


class Ledger:
    """One counter (or histogram) derived from records, kept from going down while records go.

    Each :meth:`count` is given every record's observation by record (:data:`Key`); a record
    seen before and now gone (deleted) has its last observation moved to a retired tally, which
    stays.
    """

    def __init__(self, bounds: tuple[float, ...] = ()) -> None:
        self.bounds = bounds
        self._seen: dict[Key, Observation] = {}
        self._retired: dict[Labels, Tally] = {}

    def count(self, observations: dict[Key, Observation]) -> dict[Labels, Tally]:
        """Series labels → tally, of the records given plus those retired. Not thread-safe."""
        for key, previous in self._seen.items():
            if key not in observations:  # deleted
                self._retired.setdefault(previous[0], Tally(self.bounds)).add(previous[1])
        self._seen = dict(observations)
        current: dict[Labels, Tally] = {}
        for labels, value in observations.values():
            current.setdefault(labels, Tally(self.bounds)).add(value)
        for labels, retired in self._retired.items():
            current[labels] = current.get(labels, Tally(self.bounds)).merged(retired)
        return dict(sorted(current.items()))


class Ledgers:
    """The state one server keeps between scrapes (see the module's notes on deleted records)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.launches = Ledger()
        self.outcomes = Ledger()
        self.launch_to_running = Ledger(LAUNCH_BUCKETS)
        self.run_duration = Ledger(RUN_BUCKETS)
        #: (kind, backend) pairs seen, so their status gauges keep being written (as 0) when emptied
        self.pairs: set[tuple[str, str]] = set()


class WorkloadCollector(Collector):
    """Reads the store when collected: the metrics of the module's docstring.

    Args:
        store: the store to read, in the collecting thread.
        ledgers: the counts kept between scrapes.
        max_series: the most running workloads that get usage gauges.
    """

    def __init__(self, store: Store, ledgers: Ledgers, *, max_series: int = MAX_USAGE_SERIES) -> None:
        self.store = store
        self.ledgers = ledgers
        self.max_series = max_series

    def collect(self) -> Iterator[Metric]:
        workloads = self.store.list()  # newest first; the store only, no backend calls
        yield from self._records(workloads)
        yield from self._usage([w for w in workloads if w.status == RUNNING])

    def _records(self, workloads: list[Workload]) -> Iterator[Metric]:
        launches: dict[Key, Observation] = {}
        outcomes: dict[Key, Observation] = {}
        to_running: dict[Key, Observation] = {}
        durations: dict[Key, Observation] = {}
        by_status: dict[tuple[str, str, str], int] = {}
        for w in workloads:
            pair, key = (w.kind, w.backend), (w.id, w.created)
            by_status[(*pair, w.status)] = by_status.get((*pair, w.status), 0) + 1
            launches[key] = (pair, None)
            if w.started is not None:
                to_running[key] = (pair, max(0.0, w.started - w.created))
            if w.done:
                how = outcome(w)
                outcomes[key] = ((*pair, how), None)
                if w.ended is not None:
                    begun = w.started if w.started is not None else w.created
                    durations[key] = ((*pair, how), max(0.0, w.ended - begun))
        ledgers = self.ledgers
        with ledgers.lock:
            ledgers.pairs.update((kind, backend) for kind, backend, _ in by_status)
            pairs = sorted(ledgers.pairs)
            launched = ledgers.launches.count(launches)
            ended = ledgers.outcomes.count(outcomes)
            waited = ledgers.launch_to_running.count(to_running)
            ran = ledgers.run_duration.count(durations)

        gauge = GaugeMetricFamily(
            "workbench_workloads", "Workload records by kind, backend and status.", labels=_KBS
        )
        for kind, backend in pairs:
            for status in STATUSES:
                gauge.add_metric([kind, backend, status], by_status.get((kind, backend, status), 0))
        yield gauge
        yield _counter("workbench_launches", "Workloads launched.", ("kind", "backend"), launched)
        yield _counter(
            "workbench_launch_outcomes",
            "Workloads that ended, by outcome (succeeded, failed, timed_out, cancelled).",
            ("kind", "backend", "outcome"),
            ended,
        )
        yield _histogram(
            "workbench_launch_to_running_seconds",
            "Seconds from a workload's launch to its start (running).",
            ("kind", "backend"),
            waited,
        )
        yield _histogram(
            "workbench_run_duration_seconds",
            "Seconds an ended workload ran (from its start, or its launch if it never started).",
            ("kind", "backend", "outcome"),
            ran,
        )

    def _usage(self, running: list[Workload]) -> Iterator[Metric]:
        shown = running[: self.max_series]
        summaries = self.store.usage_summaries(w.id for w in shown)
        labels = ("workload", "kind", "backend")
        families = {
            "cpu": GaugeMetricFamily(
                "workbench_workload_cpu_cores",
                "CPU a running workload used over its last sample period, in cores.",
                labels=labels,
            ),
            "memory": GaugeMetricFamily(
                "workbench_workload_memory_bytes",
                "Resident memory of a running workload (its whole process tree), last sample.",
                labels=labels,
            ),
            "gpu_util": GaugeMetricFamily(
                "workbench_workload_gpu_utilization_ratio",
                "GPU utilisation of a running workload's granted GPUs (0-1), last sample.",
                labels=labels,
            ),
            "gpu_memory": GaugeMetricFamily(
                "workbench_workload_gpu_memory_bytes",
                "GPU memory a running workload holds on its granted GPUs, last sample.",
                labels=labels,
            ),
        }
        for w in shown:
            summary = summaries.get(w.id)
            if summary is None:
                continue
            values = [w.id, w.kind, w.backend]
            families["cpu"].add_metric(values, summary["cpu_percent"] / 100.0)
            families["memory"].add_metric(values, summary["rss_bytes"])
            if summary.get("gpu_util") is not None:
                families["gpu_util"].add_metric(values, summary["gpu_util"] / 100.0)
            if summary.get("gpu_memory_bytes") is not None:
                families["gpu_memory"].add_metric(values, summary["gpu_memory_bytes"])
        yield from families.values()
        yield GaugeMetricFamily(
            "workbench_usage_series_dropped",
            f"Running workloads left without usage gauges (only the newest {self.max_series} get them).",
            value=len(running) - len(shown),
        )


_KBS = ("kind", "backend", "status")


def _counter(name: str, doc: str, labels: Labels, tallies: dict[Labels, Tally]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=labels)
    for values, tally in tallies.items():
        family.add_metric(values, tally.count)
    return family


def _histogram(name: str, doc: str, labels: Labels, tallies: dict[Labels, Tally]) -> Metric:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for values, tally in tallies.items():
        family.add_metric(values, tally.buckets(), tally.total)
    return family


class WorkbenchMetrics:
    """The metrics of one server: :meth:`exposition` renders them from a service's store."""

    def __init__(self, *, max_series: int = MAX_USAGE_SERIES) -> None:
        self.ledgers = Ledgers()
        self.max_series = max_series

    def registry(self, store: Store) -> CollectorRegistry:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(WorkloadCollector(store, self.ledgers, max_series=self.max_series))
        return registry

    def exposition(self, service: Service) -> bytes:
        """The text format (blocking: reads the store)."""
        return prometheus_client.generate_latest(self.registry(service.store))


class MetricsHandler(ExtensionHandlerMixin, JupyterHandler):
    """``GET workbench/metrics``, authenticated like jupyter_server's ``/metrics``."""

    @allow_unauthenticated
    async def get(self) -> None:
        if self.settings["authenticate_prometheus"] and not self.logged_in:
            raise web.HTTPError(403)
        app = cast("WorkbenchApp", self.extensionapp)
        try:
            body = await app.runner.call(app.metrics.exposition)
        except WorkbenchError as exc:  # the store cannot be read: the server log says why
            raise web.HTTPError(exc.http_status, "workbench metrics: %s", exc.one_line()) from None
        self.set_header("Content-Type", prometheus_client.CONTENT_TYPE_LATEST)
        self.finish(body)
