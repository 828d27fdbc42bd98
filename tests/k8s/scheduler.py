"""Nodes and a scheduler: binds pending pods to nodes whose free allocatable fits their requests."""

from __future__ import annotations

import copy
from collections import Counter
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

from .cluster import PODS, Cluster, now
from .resources import ResourceType
from .store import Obj

NODES = ("", "nodes")
DEFAULT_NODES = [{"name": "node-1", "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"}}]


def node_object(
    name: str,
    allocatable: dict[str, str],
    labels: dict[str, str] | None = None,
    taints: list[dict[str, Any]] | None = None,
    version: str = "v1.33.0",
) -> Obj:
    alloc = {"pods": "110", **{k: str(v) for k, v in allocatable.items()}}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                **(labels or {}),
            },
        },
        "spec": {"taints": list(taints or [])},
        "status": {
            "capacity": dict(alloc),
            "allocatable": dict(alloc),
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                }
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "kubeletVersion": version,
                "operatingSystem": "linux",
                "architecture": "amd64",
                "containerRuntimeVersion": "emulator://process",
            },
        },
    }


def pod_requests(pod: Obj) -> dict[str, Decimal]:
    """Effective requests: sum over containers (requests, else limits), max with init containers."""
    spec = pod.get("spec") or {}

    def one(container: Obj) -> dict[str, Decimal]:
        res = container.get("resources") or {}
        amounts = dict(res.get("limits") or {})
        amounts.update(res.get("requests") or {})
        return {k: Decimal(parse_quantity(v)) for k, v in amounts.items()}

    total: dict[str, Decimal] = {}
    for container in spec.get("containers") or []:
        for k, v in one(container).items():
            total[k] = total.get(k, Decimal(0)) + v
    for container in spec.get("initContainers") or []:
        for k, v in one(container).items():
            total[k] = max(total.get(k, Decimal(0)), v)
    total["pods"] = Decimal(1)
    return total


def tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    for tol in tolerations:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        if tol.get("operator", "Equal") == "Exists":
            if not tol.get("key") or tol["key"] == taint.get("key"):
                return True
        elif tol.get("key") == taint.get("key") and (tol.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _term_matches(term: Obj, labels: dict[str, str]) -> bool:
    for expr in term.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        have = labels.get(key)
        ok = {
            "In": have in values,
            "NotIn": have not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
            "Gt": have is not None and have.isdigit() and values and int(have) > int(values[0]),
            "Lt": have is not None and have.isdigit() and values and int(have) < int(values[0]),
        }.get(op, False)
        if not ok:
            return False
    return True


def affinity_matches(spec: Obj, labels: dict[str, str]) -> bool:
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if required:
        return any(_term_matches(term, labels) for term in required.get("nodeSelectorTerms") or [])
    return True


class Scheduler:
    def __init__(self, cluster: Cluster, pods_rt: ResourceType) -> None:
        self.cluster = cluster
        self.pods_rt = pods_rt
        self.reported: dict[str, str] = {}

    def _used(self) -> dict[str, dict[str, Decimal]]:
        used: dict[str, dict[str, Decimal]] = {}
        for pod in self.cluster.store.list(PODS):
            node = (pod.get("spec") or {}).get("nodeName")
            if node and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                bucket = used.setdefault(node, {})
                for k, v in pod_requests(pod).items():
                    bucket[k] = bucket.get(k, Decimal(0)) + v
        return used

    def _reasons(self, pod: Obj, node: Obj, used: dict[str, Decimal]) -> list[str]:
        spec = pod.get("spec") or {}
        if (node.get("spec") or {}).get("unschedulable"):
            return ["node(s) were unschedulable"]
        for taint in (node.get("spec") or {}).get("taints") or []:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(
                spec.get("tolerations") or [], taint
            ):
                return [f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"]
        if not affinity_matches(spec, node["metadata"].get("labels") or {}):
            return ["node(s) didn't match Pod's node affinity/selector"]
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        reasons = []
        for name, amount in sorted(pod_requests(pod).items()):
            if amount <= 0:
                continue
            free = Decimal(parse_quantity(allocatable.get(name, "0"))) - used.get(name, Decimal(0))
            if amount > free:
                reasons.append("Too many pods" if name == "pods" else f"Insufficient {name}")
        return reasons

    def sync(self) -> None:
        nodes = self.cluster.store.list(NODES)
        used = self._used()
        pending = [
            p
            for p in self.cluster.store.list(PODS)
            if not (p.get("spec") or {}).get("nodeName")
            and (p.get("spec") or {}).get("schedulerName", "default-scheduler") == "default-scheduler"
            and (p.get("status") or {}).get("phase", "Pending") == "Pending"
        ]
        pending.sort(key=lambda p: int(p["metadata"]["resourceVersion"]))
        live = {p["metadata"]["uid"] for p in pending}
        self.reported = {k: v for k, v in self.reported.items() if k in live}
        for pod in pending:
            histogram: Counter[str] = Counter()
            chosen = None
            for node in nodes:
                reasons = self._reasons(pod, node, used.get(node["metadata"]["name"], {}))
                if not reasons:
                    chosen = node
                    break
                histogram.update(reasons)
            if chosen is not None:
                self._bind(pod, chosen["metadata"]["name"])
                bucket = used.setdefault(chosen["metadata"]["name"], {})
                for k, v in pod_requests(pod).items():
                    bucket[k] = bucket.get(k, Decimal(0)) + v
            else:
                detail = ", ".join(sorted(f"{n} {r}" for r, n in histogram.items()))
                message = (
                    f"0/{len(nodes)} nodes are available: {detail}."
                    if nodes
                    else "no nodes available to schedule pods"
                )
                self._unschedulable(pod, message)

    def _set_condition(self, pod: Obj, condition: Obj) -> Obj:
        changed = copy.deepcopy(pod)
        status = changed.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != condition["type"]]
        status["conditions"] = [condition, *conditions]
        return changed

    def _bind(self, pod: Obj, node: str) -> None:
        changed = self._set_condition(
            pod,
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now()},
        )
        changed["spec"]["nodeName"] = node
        self.reported.pop(pod["metadata"]["uid"], None)
        self.cluster.write(self.pods_rt, changed)
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        self.cluster.event(
            changed,
            "Scheduled",
            f"Successfully assigned {ns}/{name} to {node}",
            component="default-scheduler",
        )

    def _unschedulable(self, pod: Obj, message: str) -> None:
        uid = pod["metadata"]["uid"]
        if self.reported.get(uid) == message:
            return
        self.reported[uid] = message
        changed = self._set_condition(
            pod,
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastProbeTime": None,
                "lastTransitionTime": now(),
            },
        )
        self.cluster.write(self.pods_rt, changed)
        self.cluster.event(
            changed, "FailedScheduling", message, type_="Warning", component="default-scheduler"
        )
