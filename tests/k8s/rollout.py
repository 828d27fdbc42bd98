"""The Deployment controller's rollout algorithms: RollingUpdate, Recreate and proportional scaling.

RollingUpdate (as the real controller): the new ReplicaSet grows while the sum of all
ReplicaSets' replicas stays within ``replicas + maxSurge``; old ReplicaSets shrink — the
unhealthy pods first, the oldest ReplicaSet first — only while the available pods of all of
them stay at least ``replicas - maxUnavailable``. maxSurge percentages round up,
maxUnavailable ones down, and both 0 after rounding makes maxUnavailable 1.
Recreate: old ReplicaSets go to 0, and once none of their pods is left the new one is made
and scaled to ``replicas``. A change of ``replicas`` alone (a scaling event) scales the one
active ReplicaSet, or, mid-rollout, every active one in proportion to its
``deployment.kubernetes.io/max-replicas`` annotation (the rest to the largest).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from .apps import (
    DESIRED,
    MAX_REPLICAS,
    by_creation,
    complete,
    controller_uid,
    max_surge,
    max_unavailable,
    replicas,
    status_int,
)
from .apps import (
    rolling as is_rolling,
)
from .cluster import PODS
from .store import Obj

if TYPE_CHECKING:
    from .deployments import DeploymentController


def _active(rss: list[Obj]) -> list[Obj]:
    return [rs for rs in rss if replicas(rs) > 0]


def _total(rss: list[Obj]) -> int:
    return sum(replicas(rs) for rs in rss)


def scale_rs(ctl: DeploymentController, rs: Obj, size: int, d: Obj) -> bool:
    """Set the ReplicaSet's replicas (and its desired/max-replicas annotations); True if resized."""
    annotations = rs["metadata"].get("annotations") or {}
    want = {DESIRED: str(replicas(d)), MAX_REPLICAS: str(replicas(d) + max_surge(d))}
    resize = replicas(rs) != size
    if not resize and all(annotations.get(k) == v for k, v in want.items()):
        return False
    old = replicas(rs)
    changed = copy.deepcopy(rs)
    changed["spec"]["replicas"] = size
    changed["metadata"].setdefault("annotations", {}).update(want)
    ctl.update_rs(rs, changed)
    if resize:
        verb = "up" if size > old else "down"
        ctl.event(
            d, "ScalingReplicaSet", f"Scaled {verb} replica set {rs['metadata']['name']} from {old} to {size}"
        )
    return resize


def new_rs_new_replicas(d: Obj, all_rss: list[Obj], new: Obj | None) -> int:
    """How many replicas the new ReplicaSet may have now."""
    if not is_rolling(d):
        return replicas(d)
    have = replicas(new) if new is not None else 0
    room = replicas(d) + max_surge(d) - _total(all_rss)
    if room <= 0:
        return have
    return have + min(room, replicas(d) - have)


def rolling(ctl: DeploymentController, d: Obj, rs_list: list[Obj]) -> None:
    new, olds = ctl.get_all(d, rs_list, create=True)
    all_rss = [*olds, *([new] if new else [])]
    if new is not None and (
        _reconcile_new(ctl, all_rss, new, d) or _reconcile_old(ctl, all_rss, olds, new, d)
    ):
        ctl.sync_rollout_status(all_rss, new, d)
        return
    if _complete(d):
        ctl.cleanup(olds, d)
    ctl.sync_rollout_status(all_rss, new, d)


def _complete(d: Obj) -> bool:
    return complete(d, d.get("status") or {})


def _reconcile_new(ctl: DeploymentController, all_rss: list[Obj], new: Obj, d: Obj) -> bool:
    if replicas(new) == replicas(d):
        return False
    if replicas(new) > replicas(d):
        return scale_rs(ctl, new, replicas(d), d)
    return scale_rs(ctl, new, new_rs_new_replicas(d, all_rss, new), d)


def _reconcile_old(ctl: DeploymentController, all_rss: list[Obj], olds: list[Obj], new: Obj, d: Obj) -> bool:
    old_active = _active(olds)
    if not old_active:
        return False
    min_available = replicas(d) - max_unavailable(d)
    new_unavailable = replicas(new) - status_int(new, "availableReplicas")
    budget = _total(all_rss) - min_available - new_unavailable
    if budget <= 0:
        return False
    cleaned = 0
    for rs in sorted(old_active, key=by_creation):
        if cleaned >= budget:
            break
        unhealthy = replicas(rs) - status_int(rs, "availableReplicas")
        if replicas(rs) == 0 or unhealthy <= 0:
            continue
        count = min(budget - cleaned, unhealthy)
        scale_rs(ctl, rs, replicas(rs) - count, d)
        cleaned += count
    available = sum(min(status_int(rs, "availableReplicas"), replicas(rs)) for rs in [*old_active, new])
    scaled = 0
    if available > min_available:
        allowed = available - min_available
        for rs in sorted(old_active, key=by_creation):
            if scaled >= allowed:
                break
            if replicas(rs) == 0:
                continue
            count = min(replicas(rs), allowed - scaled)
            scale_rs(ctl, rs, replicas(rs) - count, d)
            scaled += count
    return cleaned + scaled > 0


def recreate(ctl: DeploymentController, d: Obj, rs_list: list[Obj]) -> None:
    new, olds = ctl.get_all(d, rs_list, create=False)
    all_rss = [*olds, *([new] if new else [])]
    scaled = False
    for rs in _active(olds):
        scaled = scale_rs(ctl, rs, 0, d) or scaled
    if scaled or _old_pods_running(ctl, olds):
        ctl.sync_rollout_status(all_rss, new, d)
        return
    if new is None:
        new, olds = ctl.get_all(d, rs_list, create=True)
        all_rss = [*olds, *([new] if new else [])]
    if new is not None:
        scale_rs(ctl, new, replicas(d), d)
    if _complete(d):
        ctl.cleanup(olds, d)
    ctl.sync_rollout_status(all_rss, new, d)


def _old_pods_running(ctl: DeploymentController, olds: list[Obj]) -> bool:
    uids = {rs["metadata"]["uid"] for rs in olds}
    return any(
        controller_uid(p) in uids and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        for p in ctl.cluster.store.list(PODS)
    )


def is_scaling_event(ctl: DeploymentController, d: Obj, rs_list: list[Obj]) -> bool:
    new, olds = ctl.get_all(d, rs_list, create=False)
    for rs in _active([*olds, *([new] if new else [])]):
        desired = (rs["metadata"].get("annotations") or {}).get(DESIRED)
        if desired is not None and desired.isdigit() and int(desired) != replicas(d):
            return True
    return False


def scale(ctl: DeploymentController, d: Obj, new: Obj | None, olds: list[Obj]) -> None:
    """Scale for a change of ``replicas`` (the real ``scale``: one active set, saturated, or proportional)."""
    everything = [*olds, *([new] if new else [])]
    active = _active(everything)
    if len(active) <= 1:
        target = active[0] if active else new or (max(olds, key=by_creation) if olds else None)
        if target is not None and replicas(target) != replicas(d):
            scale_rs(ctl, target, replicas(d), d)
        return
    if new is not None and _saturated(d, new):
        for rs in _active(olds):
            scale_rs(ctl, rs, 0, d)
        return
    if not is_rolling(d):
        return
    allowed = replicas(d) + max_surge(d) if replicas(d) > 0 else 0
    to_add = allowed - _total(active)
    if to_add > 0:
        active.sort(key=lambda rs: (-replicas(rs), -by_creation(rs)[0]))
    elif to_add < 0:
        active.sort(key=lambda rs: (-replicas(rs), by_creation(rs)[0]))
    added, plan = 0, {}
    for rs in active:
        share = _proportion(rs, d, to_add, added)
        plan[rs["metadata"]["uid"]] = replicas(rs) + share
        added += share
    if to_add and active:
        first = active[0]["metadata"]["uid"]
        plan[first] = max(plan[first] + to_add - added, 0)
    for rs in active:
        scale_rs(ctl, rs, plan[rs["metadata"]["uid"]], d)


def _saturated(d: Obj, new: Obj) -> bool:
    desired = (new["metadata"].get("annotations") or {}).get(DESIRED)
    return (
        replicas(new) == replicas(d)
        and desired == str(replicas(d))
        and status_int(new, "availableReplicas") == replicas(d)
    )


def _proportion(rs: Obj, d: Obj, to_add: int, added: int) -> int:
    if replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    if replicas(d) == 0:
        fraction = -replicas(rs)
    else:
        annotated_text = (rs["metadata"].get("annotations") or {}).get(MAX_REPLICAS)
        annotated = int(annotated_text) if annotated_text and annotated_text.isdigit() else 0
        annotated = annotated or status_int(d, "replicas") or replicas(rs)
        size = replicas(rs) * (replicas(d) + max_surge(d)) / annotated
        fraction = int(size + 0.5) - replicas(rs)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)
