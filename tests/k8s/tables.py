"""meta.k8s.io/v1 Table output (what ``kubectl get`` asks for)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .cluster import parse_time
from .resources import ResourceType

Obj = dict[str, Any]


def human_duration(seconds: float) -> str:
    """Like k8s.io/apimachinery's duration.HumanDuration."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def age(obj: Obj) -> str:
    created = parse_time(obj["metadata"].get("creationTimestamp"))
    return "<unknown>" if created is None else human_duration(time.time() - created)


def _pod_cells(pod: Obj) -> list[Any]:
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    total = len((pod.get("spec") or {}).get("containers") or [])
    ready = sum(1 for cs in statuses if cs.get("ready"))
    reason = status.get("reason") or status.get("phase") or "Pending"
    for cs in statuses:
        state = cs.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated"):
            term = state["terminated"]
            reason = term.get("reason") or (
                f"Signal:{term['signal']}" if term.get("signal") else f"ExitCode:{term.get('exitCode')}"
            )
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    restarts = sum(int(cs.get("restartCount", 0)) for cs in statuses)
    return [
        pod["metadata"]["name"],
        f"{ready}/{total}",
        reason,
        restarts,
        age(pod),
        status.get("podIP") or "<none>",
        (pod.get("spec") or {}).get("nodeName") or "<none>",
    ]


def _job_cells(job: Obj) -> list[Any]:
    spec, status = job.get("spec") or {}, job.get("status") or {}
    completions = spec.get("completions")
    done = status.get("succeeded", 0)
    text = f"{done}/{completions}" if completions is not None else f"{done}/1 of {spec.get('parallelism', 1)}"
    return [job["metadata"]["name"], text, age(job)]


def _event_cells(event: Obj) -> list[Any]:
    ref = event.get("involvedObject") or {}
    last = parse_time(event.get("lastTimestamp") or event["metadata"].get("creationTimestamp"))
    seen = human_duration(time.time() - last) if last else "<unknown>"
    return [
        seen,
        event.get("type", ""),
        event.get("reason", ""),
        f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}",
        event.get("message", ""),
    ]


def _node_cells(node: Obj) -> list[Any]:
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    version = ((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "")
    return [node["metadata"]["name"], "Ready" if ready else "NotReady", "<none>", age(node), version]


def _namespace_cells(ns: Obj) -> list[Any]:
    return [ns["metadata"]["name"], (ns.get("status") or {}).get("phase", "Active"), age(ns)]


def _deployment_cells(d: Obj) -> list[Any]:
    spec, status = d.get("spec") or {}, d.get("status") or {}
    want = spec.get("replicas", 1)
    ready = f"{status.get('readyReplicas', 0)}/{want}"
    return [
        d["metadata"]["name"],
        ready,
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        age(d),
    ]


def _replicaset_cells(rs: Obj) -> list[Any]:
    spec, status = rs.get("spec") or {}, rs.get("status") or {}
    counts = [spec.get("replicas", 1), status.get("replicas", 0), status.get("readyReplicas", 0)]
    return [rs["metadata"]["name"], *counts, age(rs)]


def _endpoints_cells(ep: Obj) -> list[Any]:
    found = [
        f"{a['ip']}:{p['port']}"
        for s in ep.get("subsets") or []
        for p in s.get("ports") or []
        for a in s.get("addresses") or []
    ]
    text = ",".join(found[:3]) + (f" + {len(found) - 3} more..." if len(found) > 3 else "")
    return [ep["metadata"]["name"], text or "<none>", age(ep)]


Column = tuple[str, str, int]  # name, type, priority
LAYOUTS: dict[str, tuple[list[Column], Callable[[Obj], list[Any]]]] = {
    "pods": (
        [
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "integer", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
        ],
        _pod_cells,
    ),
    "jobs": ([("Name", "string", 0), ("Completions", "string", 0), ("Age", "string", 0)], _job_cells),
    "events": (
        [
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
        ],
        _event_cells,
    ),
    "nodes": (
        [
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Roles", "string", 0),
            ("Age", "string", 0),
            ("Version", "string", 0),
        ],
        _node_cells,
    ),
    "namespaces": ([("Name", "string", 0), ("Status", "string", 0), ("Age", "string", 0)], _namespace_cells),
    "deployments": (
        [
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
        ],
        _deployment_cells,
    ),
    "replicasets": (
        [
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
        ],
        _replicaset_cells,
    ),
    "endpoints": (
        [("Name", "string", 0), ("Endpoints", "string", 0), ("Age", "string", 0)],
        _endpoints_cells,
    ),
}


def _default_cells(obj: Obj) -> list[Any]:
    return [obj["metadata"]["name"], age(obj)]


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def table(rt: ResourceType, objects: list[Obj], resource_version: str, include: str = "Metadata") -> Obj:
    columns, cells = LAYOUTS.get(rt.plural, ([("Name", "string", 0), ("Age", "string", 0)], _default_cells))
    rows = []
    for obj in objects:
        row: Obj = {"cells": cells(obj)}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            {
                "name": name,
                "type": type_,
                "format": "name" if name == "Name" else "",
                "description": f"{name} of the {rt.kind}",
                "priority": priority,
            }
            for name, type_, priority in columns
        ],
        "rows": rows,
    }
