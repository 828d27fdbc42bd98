"""What a workload uses: the one resource report ``describe``, ``workbench top``, the REST
records and the widgets show, and how its figures are written for people.

Local workloads are sampled by their supervisor (:mod:`workbench.runtime.usage`) into the
store (:mod:`workbench.usage_store`). A backend with the ``Metering`` ability (Kubernetes: the
cluster's ``metrics.k8s.io``) is asked instead, and records what it reads in the same store.
"""

from __future__ import annotations

import itertools
import statistics
from typing import TYPE_CHECKING, Any

from .store import Store, Workload
from .units import format_bytes

if TYPE_CHECKING:
    from .backends.base import Backend

#: Where each backend's figures come from (None: no source yet).
SOURCES: dict[str, str | None] = {"local": "psutil", "kubernetes": "metrics.k8s.io"}


def report(store: Store, workload: Workload, backend: Backend | None = None) -> dict[str, Any]:
    """``{"summary": {...} | None, "history": [...], "source": ..., "note": str | None}``: from
    ``backend`` when it has the ``Metering`` ability, else what the store holds."""
    from .backends.base import Metering, ability

    metering: Metering | None = ability(backend, Metering)
    if metering is not None:
        return metering.usage(workload)
    source = SOURCES.get(workload.backend)
    if source is None:
        return {
            "summary": None,
            "history": [],
            "source": None,
            "note": f"no resource metrics for the {workload.backend} backend yet",
        }
    summary = store.usage_summaries([workload.id]).get(workload.id)
    note = None
    if summary is None:
        note = (
            "no resource samples yet"
            if not workload.done
            else "no resource samples (it ended before its first sample, or sampling was off)"
        )
    return {"summary": summary, "history": store.usage(workload.id), "source": source, "note": note}


def period(history: list[dict[str, Any]]) -> float | None:
    """The seconds between samples, as taken (the median gap); None with fewer than two."""
    times = [sample["t"] for sample in history]
    gaps = [b - a for a, b in itertools.pairwise(times) if b > a]
    return statistics.median(gaps) if gaps else None


def size(n_bytes: float | None) -> str:
    """Bytes for people: ``312.4Mi``, ``2Gi``; ``-`` for none."""
    return "-" if n_bytes is None else format_bytes(int(n_bytes))


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def millicores(value: float | None) -> str:
    """A CPU % (100 = one core) as ``kubectl top`` writes cores: ``980m``."""
    return "-" if value is None else f"{round(value * 10)}m"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}s"


def gpu(summary: dict[str, Any], *, peak: bool = False) -> str:
    """``85% 10.2Gi`` (utilisation, memory) of the granted GPUs; ``-`` without GPU figures."""
    util = summary.get("peak_gpu_util" if peak else "gpu_util")
    memory = summary.get("peak_gpu_memory_bytes" if peak else "gpu_memory_bytes")
    if util is None and memory is None:
        return "-"
    return f"{percent(util)} {size(memory)}"


def describe_block(usage: dict[str, Any]) -> dict[str, Any]:
    """The ``usage:`` block of ``describe``: peaks and averages, in units people read."""
    summary = usage.get("summary")
    if not summary:
        return {"source": usage.get("source"), "note": usage.get("note")}
    block: dict[str, Any] = {
        "cpu": f"peak {percent(summary['peak_cpu_percent'])}, avg {percent(summary['avg_cpu_percent'])} "
        "(100% = one core)",
        "memory": f"peak {size(summary['peak_rss_bytes'])}, avg {size(summary['avg_rss_bytes'])}",
        "cpu_seconds": round(summary["cpu_seconds"], 2),
    }
    if usage.get("source") == "psutil":  # metrics APIs count no threads
        block["threads"] = summary["threads"]
    if summary.get("peak_gpu_util") is not None or summary.get("peak_gpu_memory_bytes") is not None:
        block["gpu"] = (
            f"peak {percent(summary.get('peak_gpu_util'))}, "
            f"memory peak {size(summary.get('peak_gpu_memory_bytes'))}"
        )
    every = period(usage.get("history") or [])
    block["samples"] = summary["samples"]
    if every is not None:
        block["period"] = seconds(every)
    block["source"] = usage.get("source")
    return block
