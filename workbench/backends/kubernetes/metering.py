"""The :class:`~workbench.backends.base.Metering` ability of the Kubernetes backend: what a
workload's pods use, read from the cluster's resource metrics API (``metrics.k8s.io``).

metrics-server (or another provider of that API) answers with PodMetrics: per container, the
CPU used as a rate over a ``window`` ending at a ``timestamp``, and the memory in use (its
working set). Each read is one list of PodMetrics in the namespace with the workload's label
selector, so every pod of it comes in one answer (a train job's nodes, an endpoint's replicas,
a Dask cluster's scheduler and workers) and none is polled on its own. The containers and pods
are added up into one sample, recorded in the store's usage tables as a local workload's samples
are (once per metrics timestamp: the API answers the same figures until its next scrape), so
``describe``, ``workbench top``, the REST records and the widgets read them the same way.

A sample's ``cpu_percent`` is 100 per core in use, ``rss_bytes`` the memory
the API reports; ``cpu_seconds`` adds up the CPU time of the windows read (exact when every
scrape is read, less when reads miss some); the API gives no thread count (0) and no GPU
figures. Workloads are read while they are active, when someone asks (``Service.usage``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ...errors import NotFound, WorkbenchError
from ...store import ACTIVE, Workload
from ...units import parse_duration, parse_quantity
from .settings import ID_LABEL

if TYPE_CHECKING:
    from .backend import KubernetesBackend

SOURCE = "metrics.k8s.io"
GROUP_VERSION = "metrics.k8s.io/v1beta1"
NO_API = "the cluster serves no metrics.k8s.io (install metrics-server)"


class Metered:
    """Mixed into :class:`~.backend.KubernetesBackend`."""

    def usage(self, workload: Workload) -> dict[str, Any]:
        """``{"summary", "history", "source", "note"}``: a new reading of an active workload
        recorded, with those kept before (see :mod:`workbench.usage`)."""
        return read_usage(self, workload)  # type: ignore[arg-type]  # mixed into the backend


def read_usage(backend: KubernetesBackend, workload: Workload) -> dict[str, Any]:
    """Read the workload's PodMetrics (when it is active), record them, and report."""
    note = _record(backend, workload) if workload.status in ACTIVE else None
    store = backend.store
    summary = store.usage_summaries([workload.id]).get(workload.id)
    if summary is None and note is None:
        note = (
            "no PodMetrics for its pods yet (metrics-server reports a pod after its first scrapes)"
            if workload.status in ACTIVE
            else "no PodMetrics were read while it ran"
        )
    return {"summary": summary, "history": store.usage(workload.id), "source": SOURCE, "note": note}


def available(client: Any) -> bool | None:
    """Whether the API server serves ``metrics.k8s.io`` (discovery; no permission needed);
    None when it did not answer."""
    try:
        client.request("GET", f"/apis/{GROUP_VERSION}", verb="get", resource=SOURCE)
    except NotFound:
        return False
    except WorkbenchError:
        return None
    return True


def _record(backend: KubernetesBackend, workload: Workload) -> str | None:
    """Record one sample of the workload's pods; a note when none could be read."""
    client = backend.client
    try:
        data = client.request(
            "GET",
            f"/apis/{GROUP_VERSION}/namespaces/{client.namespace}/pods",
            verb="list",
            resource=f"pods.{SOURCE}",
            query={"labelSelector": f"{ID_LABEL}={workload.id}"},
        )
    except NotFound:
        return NO_API
    except WorkbenchError as exc:
        return f"could not read {SOURCE}: {exc.one_line()}"
    sample = combine(data.get("items") or [])
    if sample is None:
        return None
    store = backend.store
    last = store.usage_summaries([workload.id]).get(workload.id)
    if last is not None and sample["t"] <= last["last_t"]:
        return None  # the same scrape as the last reading
    sample["cpu_seconds"] += last["cpu_seconds"] if last else 0.0
    store.record_usage(workload.id, sample, keep=backend.settings.usage_history)
    return None


def combine(items: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """One sample of PodMetrics added up (None without any): ``t`` is the newest timestamp,
    ``cpu_seconds`` the CPU time of their windows."""
    cores = cpu_time = 0.0
    memory, stamps = 0, []
    for item in items:
        pod_cores = 0.0
        for container in item.get("containers") or []:
            usage = container.get("usage") or {}
            pod_cores += float(parse_quantity(usage.get("cpu", "0")))
            memory += int(parse_quantity(usage.get("memory", "0")))
        cores += pod_cores
        cpu_time += pod_cores * _seconds(item.get("window"))
        stamps.append(_timestamp(item.get("timestamp")))
    if not stamps:
        return None
    return {
        "t": max(stamps),
        "cpu_seconds": cpu_time,
        "cpu_percent": cores * 100,
        "rss_bytes": memory,
        "threads": 0,
        "gpu_util": None,
        "gpu_memory_bytes": None,
    }


def _seconds(window: Any) -> float:
    """A Go duration (``"15.012s"``, ``"1m0.5s"``) in seconds; 0 when missing or unreadable."""
    try:
        return parse_duration(str(window))
    except ValueError:
        return 0.0


def _timestamp(text: Any) -> float:
    try:
        return dt.datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return dt.datetime.now(dt.UTC).timestamp()
