"""``workbench top [NAME]``: what running workloads use, like ``kubectl top pod``.

CPU is written in cores as kubectl does (``980m`` is 0.98 of a core, over the last sample's
period), memory is the resident memory of the workload's whole process tree (on Kubernetes, its
pods' memory as metrics.k8s.io reports it, read now), GPU the granted GPUs' utilisation and
memory in use; PEAK MEM is the highest memory sampled so far.
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


def _entry(workload: Workload, report: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": workload.id,
        "kind": workload.kind,
        "backend": workload.backend,
        "status": workload.status,
        "summary": report["summary"],
        "source": report["source"],
        "note": report["note"],
    }


def run(service: Service, args: argparse.Namespace) -> int:
    """Print the table (or JSON); each reason some have no figures goes to stderr, once."""
    workloads = [service.get(args.name)] if args.name else service.list(status=["running"])
    reports = {w.id: service.usage(w.id) for w in workloads}  # metrics APIs are read here
    if args.output == "json":
        entries = [_entry(w, reports[w.id]) for w in workloads]
        if args.name:
            entries[0]["history"] = reports[workloads[0].id]["history"]
        print(render.as_json(entries))
        return 0
    if not workloads:
        print("workbench: no running workloads", file=sys.stderr)
        return 0
    print(render.columns([COLUMNS, *(_row(w, reports[w.id]["summary"]) for w in workloads)]))
    notes: dict[str, list[str]] = {}
    for workload in workloads:
        if reports[workload.id]["note"]:
            notes.setdefault(reports[workload.id]["note"], []).append(workload.id)
    for note, names in notes.items():
        print(f"workbench: {note} ({', '.join(names)})", file=sys.stderr)
    return 0
