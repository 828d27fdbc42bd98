"""A Deployment's status as the real controller computes it: counts and conditions.

``calculate`` gives the counts (zeros omitted, as the API does) and the ``Available``
condition (True while availableReplicas >= replicas - maxUnavailable); ``rollout`` adds the
``Progressing`` condition: NewReplicaSetAvailable once complete, ReplicaSetUpdated whenever
a count moved forward (its lastUpdateTime renewed), ProgressDeadlineExceeded (False) when
``progressDeadlineSeconds`` passed since that lastUpdateTime without progress; and
``ReplicaFailure`` copied from a ReplicaSet that cannot create its pods.
"""

from __future__ import annotations

import copy
import time

from .apps import (
    MAX_INT32,
    REPLICASETS,
    compact,
    complete,
    max_unavailable,
    parse_time,
    replicas,
    status_int,
)
from .cluster import now
from .store import Obj, Store

COUNTS = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas")


def condition(status: Obj, type_: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), None)


def set_condition(status: Obj, type_: str, value: str, reason: str, message: str) -> None:
    """Replace the condition unless its status and reason are the same; keep its transition time."""
    current = condition(status, type_)
    if current is not None and current.get("status") == value and current.get("reason") == reason:
        return
    stamp = now()
    same = current is not None and current.get("status") == value
    new = {
        "type": type_,
        "status": value,
        "lastUpdateTime": stamp,
        "lastTransitionTime": current["lastTransitionTime"] if current is not None and same else stamp,
        "reason": reason,
        "message": message,
    }
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != type_] + [new]


def remove_condition(status: Obj, type_: str) -> None:
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != type_]


def has_deadline(d: Obj) -> bool:
    deadline = d["spec"].get("progressDeadlineSeconds")
    return deadline is not None and int(deadline) != MAX_INT32


def _get(status: Obj, field: str) -> int:
    return int(status.get(field) or 0)


def _progressing(d: Obj, new: Obj) -> bool:
    old = d.get("status") or {}
    return (
        _get(new, "updatedReplicas") > _get(old, "updatedReplicas")
        or _get(new, "replicas") - _get(new, "updatedReplicas")
        < _get(old, "replicas") - _get(old, "updatedReplicas")
        or _get(new, "readyReplicas") > _get(old, "readyReplicas")
        or _get(new, "availableReplicas") > _get(old, "availableReplicas")
    )


def _timed_out(d: Obj, status: Obj) -> bool:
    cond = condition(status, "Progressing")
    if not has_deadline(d) or cond is None or cond.get("reason") == "NewReplicaSetAvailable":
        return False
    if cond.get("reason") == "ProgressDeadlineExceeded":
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    return since is not None and since + int(d["spec"]["progressDeadlineSeconds"]) < time.time()


def calculate(store: Store, all_rss: list[Obj], new: Obj | None, d: Obj) -> Obj:
    fresh = [
        store.get(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"]) or rs for rs in all_rss
    ]
    uid = new["metadata"]["uid"] if new is not None else None
    new_fresh = next((rs for rs in fresh if rs["metadata"]["uid"] == uid), None)
    available = sum(status_int(rs, "availableReplicas") for rs in fresh)
    status = copy.deepcopy(d.get("status") or {})
    status.update(
        observedGeneration=d["metadata"].get("generation", 1),
        replicas=sum(status_int(rs, "replicas") for rs in fresh),
        updatedReplicas=status_int(new_fresh, "replicas") if new_fresh else 0,
        readyReplicas=sum(status_int(rs, "readyReplicas") for rs in fresh),
        availableReplicas=available,
        unavailableReplicas=max(sum(replicas(rs) for rs in fresh) - available, 0),
    )
    if available >= replicas(d) - max_unavailable(d):
        set_condition(
            status, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."
        )
    else:
        message = "Deployment does not have minimum availability."
        set_condition(status, "Available", "False", "MinimumReplicasUnavailable", message)
    return compact(status, *COUNTS)


def rollout(store: Store, all_rss: list[Obj], new: Obj | None, d: Obj) -> Obj:
    """The status after a rollout step: ``calculate`` plus Progressing and ReplicaFailure."""
    status = calculate(store, all_rss, new, d)
    if not has_deadline(d):
        remove_condition(status, "Progressing")
    cond = condition(status, "Progressing")
    done = (
        _get(status, "replicas") == _get(status, "updatedReplicas")
        and cond is not None
        and cond.get("reason") == "NewReplicaSetAvailable"
    )
    subject = f'ReplicaSet "{new["metadata"]["name"]}"' if new else f'Deployment "{d["metadata"]["name"]}"'
    if has_deadline(d) and not done:
        if complete(d, status):
            message = f"{subject} has successfully progressed."
            set_condition(status, "Progressing", "True", "NewReplicaSetAvailable", message)
        elif _progressing(d, status):
            keep = (
                cond.get("lastTransitionTime") if cond is not None and cond.get("status") == "True" else None
            )
            remove_condition(status, "Progressing")
            set_condition(status, "Progressing", "True", "ReplicaSetUpdated", f"{subject} is progressing.")
            renewed = condition(status, "Progressing")
            if keep and renewed is not None:
                renewed["lastTransitionTime"] = keep
        elif _timed_out(d, status):
            message = f"{subject} has timed out progressing."
            set_condition(status, "Progressing", "False", "ProgressDeadlineExceeded", message)
    failures = [
        c
        for rs in all_rss
        for c in (rs.get("status") or {}).get("conditions") or []
        if c.get("type") == "ReplicaFailure" and c.get("status") == "True"
    ]
    if failures:
        set_condition(status, "ReplicaFailure", "True", failures[0]["reason"], failures[0]["message"])
    else:
        remove_condition(status, "ReplicaFailure")
    return status
