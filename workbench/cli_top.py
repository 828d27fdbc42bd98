"""``workbench top [NAME]``: what running workloads use, like ``kubectl top pod``.

CPU is written in cores as kubectl does (``980m`` is 0.98 of a core, over the last sample's
period), memory is the resident memory of the workload's whole process tree, GPU the granted
GPUs' utilisation and memory in use; PEAK MEM is the highest memory sampled so far.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from . import render, usage

if TYPE_CHECKING:
    from .service import Service
    from .store import Workload

COLUMNS = ("NAME", "KIND", "STATUS", "CPU", "MEMORY", "GPU", "PEAK MEM")


def add_parser(sub: Any) -> None:
    top = sub.add_parser(
        "top",
        help="show the CPU, memory and GPU use of running workloads (like kubectl top)",
        description="The last resource sample of each running workload, or of NAME whatever its state.",
    )
    top.add_argument("name", metavar="NAME", nargs="?", help="one workload (default: every running one)")
    top.add_argument("-o", "--output", choices=("table", "json"), default="table")
    top.set_defaults(handler=run)


def _row(workload: Workload, summary: dict[str, Any] | None) -> tuple[str, ...]:
    if summary is None:
        return (workload.id, workload.kind, workload.status, "-", "-", "-", "-")
    return (
        workload.id,
        workload.kind,
        workload.status,
        usage.millicores(summary["cpu_percent"]),
        usage.size(summary["rss_bytes"]),
        usage.gpu(summary),
        usage.size(summary["peak_rss_bytes"]),
    )


def _entry(workload: Workload, summary: dict[str, Any] | None) -> dict[str, Any]:
    source = usage.SOURCES.get(workload.backend)
    note = None if source else f"no resource metrics for the {workload.backend} backend yet"
    return {
        "name": workload.id,
        "kind": workload.kind,
        "backend": workload.backend,
        "status": workload.status,
        "summary": summary,
        "source": source,
        "note": note,
    }


def run(service: Service, args: argparse.Namespace) -> int:
    """Print the table (or JSON); notes on backends without metrics go to stderr."""
    if args.name:
        workload = service.get(args.name)
        report = service.usage(workload.id)
        workloads, summaries = [workload], {workload.id: report["summary"]}
    else:
        workloads = service.list(status=["running"])
        summaries = service.usage_summaries(workloads)
    if args.output == "json":
        entries = [_entry(w, summaries.get(w.id)) for w in workloads]
        if args.name:
            entries[0].update(history=report["history"], note=report["note"])
        print(render.as_json(entries))
        return 0
    if not workloads:
        print("workbench: no running workloads", file=sys.stderr)
        return 0
    print(render.columns([COLUMNS, *(_row(w, summaries.get(w.id)) for w in workloads)]))
    for backend in sorted({w.backend for w in workloads if usage.SOURCES.get(w.backend) is None}):
        print(f"workbench: no resource metrics for the {backend} backend yet", file=sys.stderr)
    return 0
