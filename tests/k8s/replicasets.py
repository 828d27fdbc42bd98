"""The ReplicaSet controller: keeps ``spec.replicas`` active pods, and the ReplicaSet's status.

As the real one does: pods it controls (ownerReference with ``controller: true``) count when
they are active (not Succeeded/Failed, not being deleted); orphan pods that match the selector
are adopted and owned pods that no longer match are released; missing pods are created from
the template (``generateName: <rs>-``, the template's labels and annotations, an
ownerReference); surplus pods are deleted in the order of the real controller's ranking —
unscheduled before scheduled, Pending before Running, not ready before ready, the lower
``controller.kubernetes.io/pod-deletion-cost`` first, more pods of the set on the same node
first, the most recently ready first, more restarts first, newest first.
Status: replicas, fullyLabeledReplicas, readyReplicas, availableReplicas (ready for
``minReadySeconds``), observedGeneration, and a ReplicaFailure condition when a create fails.
"""

from __future__ import annotations

import copy
import time
from collections import Counter

from .apps import (
    REPLICASETS,
    active_pod,
    by_creation,
    compact,
    controller_uid,
    owner_ref,
    parse_time,
    pod_available,
    ready_condition,
    replicas,
    selects,
)
from .cluster import PODS, Cluster, now
from .errors import ApiError
from .resources import ResourceType
from .store import Obj

BURST = 500
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def _restarts(pod: Obj) -> int:
    return sum(
        int(s.get("restartCount", 0)) for s in (pod.get("status") or {}).get("containerStatuses") or []
    )


def deletion_order(pods: list[Obj], related: list[Obj]) -> list[Obj]:
    """``pods`` sorted with the ones to delete first (the real ranking, see the module doc)."""
    on_node = Counter((p.get("spec") or {}).get("nodeName") for p in related if active_pod(p))

    def key(pod: Obj) -> tuple[object, ...]:
        node = (pod.get("spec") or {}).get("nodeName")
        phase = (pod.get("status") or {}).get("phase") or "Pending"
        cond = ready_condition(pod)
        ready_at = parse_time(cond.get("lastTransitionTime")) if cond else None
        created = by_creation(pod)[0]
        cost = (pod["metadata"].get("annotations") or {}).get(DELETION_COST, "0")
        return (
            node is not None,
            _PHASE_RANK.get(phase, 2),
            cond is not None,
            int(cost) if cost.lstrip("-").isdigit() else 0,
            -on_node[node] if node else 0,
            -(ready_at or 0.0),
            -_restarts(pod),
            -created,
        )

    return sorted(pods, key=key)


class ReplicaSetController:
    def __init__(self, cluster: Cluster, rs_rt: ResourceType, pods_rt: ResourceType) -> None:
        self.cluster = cluster
        self.rs_rt = rs_rt
        self.pods_rt = pods_rt

    def sync(self) -> None:
        for rs in self.cluster.store.list(REPLICASETS):
            try:
                self._sync(rs)
            except ApiError:
                continue

    def _event(self, rs: Obj, reason: str, message: str, type_: str = "Normal") -> None:
        self.cluster.event(rs, reason, message, type_=type_, component="replicaset-controller")

    def _claim(self, rs: Obj, pods: list[Obj]) -> list[Obj]:
        """The pods this set controls after adopting matching orphans and releasing strays."""
        uid, selector = rs["metadata"]["uid"], (rs.get("spec") or {}).get("selector")
        owned = []
        for pod in pods:
            ctrl = controller_uid(pod)
            matches = selects(selector, pod)
            if ctrl == uid and matches:
                owned.append(pod)
            elif ctrl == uid:
                changed = copy.deepcopy(pod)
                refs = [r for r in changed["metadata"]["ownerReferences"] if r.get("uid") != uid]
                changed["metadata"]["ownerReferences"] = refs
                self.cluster.write(self.pods_rt, changed)
            elif ctrl is None and matches and active_pod(pod):
                changed = copy.deepcopy(pod)
                refs = changed["metadata"].setdefault("ownerReferences", [])
                refs.append(owner_ref(rs, "apps/v1", "ReplicaSet"))
                owned.append(self.cluster.write(self.pods_rt, changed))
        return owned

    def _sync(self, rs: Obj) -> None:
        meta = rs["metadata"]
        if meta.get("deletionTimestamp"):
            return
        ns = meta["namespace"]
        related = self.cluster.store.list(PODS, ns)
        owned = [p for p in self._claim(rs, related) if active_pod(p)]
        diff = len(owned) - replicas(rs)
        failure: str | None = None
        if diff < 0:
            for _ in range(min(-diff, BURST)):
                failure = self._create(rs) or failure
        elif diff > 0:
            for pod in deletion_order(owned, related)[:diff]:
                try:
                    self.cluster.delete(self.pods_rt, ns, pod["metadata"]["name"], propagation="Background")
                except ApiError:
                    continue
                self._event(rs, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")
        self._status(rs, failure)

    def _create(self, rs: Obj) -> str | None:
        meta, spec = rs["metadata"], rs.get("spec") or {}
        template = copy.deepcopy(spec.get("template") or {})
        tmeta = template.get("metadata") or {}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": f"{meta['name']}-",
                "labels": dict(tmeta.get("labels") or {}),
                "annotations": dict(tmeta.get("annotations") or {}),
                "ownerReferences": [owner_ref(rs, "apps/v1", "ReplicaSet")],
            },
            "spec": template.get("spec") or {},
        }
        if tmeta.get("finalizers"):
            pod["metadata"]["finalizers"] = list(tmeta["finalizers"])
        try:
            created = self.cluster.create(self.pods_rt, meta["namespace"], pod)
        except ApiError as exc:
            self._event(rs, "FailedCreate", f"Error creating: {exc.message}", "Warning")
            return exc.message
        self._event(rs, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
        return None

    def _status(self, rs: Obj, failure: str | None) -> None:
        meta = rs["metadata"]
        current = self.cluster.store.get(REPLICASETS, meta["namespace"], meta["name"])
        if current is None or current["metadata"]["uid"] != meta["uid"]:
            return
        pods = [
            p
            for p in self.cluster.store.list(PODS, meta["namespace"])
            if controller_uid(p) == meta["uid"] and active_pod(p)
        ]
        spec = current.get("spec") or {}
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        min_ready, clock = int(spec.get("minReadySeconds") or 0), time.time()
        status = copy.deepcopy(current.get("status") or {})
        status.update(
            replicas=len(pods),
            fullyLabeledReplicas=sum(
                1 for p in pods if template_labels.items() <= (p["metadata"].get("labels") or {}).items()
            ),
            readyReplicas=sum(1 for p in pods if ready_condition(p)),
            availableReplicas=sum(1 for p in pods if pod_available(p, min_ready, clock)),
            observedGeneration=current["metadata"].get("generation", 1),
        )
        kept = [c for c in status.get("conditions") or [] if c.get("type") == "ReplicaFailure"]
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "ReplicaFailure"]
        if failure is not None and kept and kept[0].get("message") == failure:
            conditions += kept
        elif failure is not None:
            conditions.append(
                {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "lastTransitionTime": now(),
                    "reason": "FailedCreate",
                    "message": failure,
                }
            )
        status["conditions"] = conditions
        compact(status, "fullyLabeledReplicas", "readyReplicas", "availableReplicas", "conditions")
        if status != current.get("status"):
            changed = copy.deepcopy(current)
            changed["status"] = status
            self.cluster.write(self.rs_rt, changed)
