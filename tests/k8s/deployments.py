"""The Deployment controller: ReplicaSets per pod template, revisions, rollout status, history.

It follows the real controller (the rollout algorithms themselves are in rollout.py):

- the ReplicaSet of the current template is ``<deployment>-<pod-template-hash>``; the hash
  (FNV-1a of the template and ``status.collisionCount``, in Kubernetes' safe alphabet) is added
  to the template's labels and to the ReplicaSet's selector; a name taken by a ReplicaSet with
  another template bumps ``collisionCount``;
- ``deployment.kubernetes.io/revision``: a new ReplicaSet gets the highest revision of the old
  ones plus one, and so does an old ReplicaSet whose template the Deployment goes back to (its
  previous revisions listed in ``deployment.kubernetes.io/revision-history``) — what
  ``kubectl rollout undo`` relies on; the Deployment carries its current ReplicaSet's revision.
  ReplicaSets also get the Deployment's annotations and ``desired-replicas``/``max-replicas``;
- ReplicaSets matching the selector without a controller are adopted, owned ones that stop
  matching released;
- status: observedGeneration, replicas, updatedReplicas, readyReplicas, availableReplicas,
  unavailableReplicas (zeros omitted, as the API does), collisionCount; conditions
  ``Available`` (MinimumReplicasAvailable / MinimumReplicasUnavailable, against
  replicas - maxUnavailable) and ``Progressing`` (NewReplicaSetCreated, FoundNewReplicaSet,
  ReplicaSetUpdated while progress is made, NewReplicaSetAvailable once complete,
  ProgressDeadlineExceeded (status False) when no progress was made for
  ``progressDeadlineSeconds`` since its lastUpdateTime, DeploymentPaused/DeploymentResumed),
  and ``ReplicaFailure`` copied from a ReplicaSet that cannot create pods;
- ``spec.paused``: scaling still applies, template changes do not roll out;
- ``revisionHistoryLimit``: the oldest scaled-down old ReplicaSets beyond it are deleted once
  the rollout is complete (or while paused).
"""

from __future__ import annotations

import copy

from . import deploystatus, rollout
from .apps import (
    DEPLOYMENTS,
    HASH_LABEL,
    MAX_REPLICAS,
    NOT_COPIED,
    REPLICASETS,
    REVISION,
    REVISION_HISTORY,
    by_creation,
    controller_uid,
    max_surge,
    owner_ref,
    replicas,
    revision,
    same_template,
    selects,
    status_int,
    template_hash,
)
from .apps import DESIRED as DESIRED_REPLICAS
from .cluster import Cluster
from .deploystatus import condition, has_deadline, set_condition
from .errors import ApiError
from .resources import ResourceType
from .store import Obj

COUNTS = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas")


def set_new_rs_annotations(d: Obj, rs: Obj, new_revision: str, exists: bool) -> bool:
    annotations = rs["metadata"].setdefault("annotations", {})
    changed = False
    for key, value in (d["metadata"].get("annotations") or {}).items():
        if key not in NOT_COPIED and annotations.get(key) != value:
            annotations[key], changed = value, True
    old = annotations.get(REVISION)
    if revision(rs) < int(new_revision):
        annotations[REVISION], changed = new_revision, True
        if old:
            history = annotations.get(REVISION_HISTORY)
            annotations[REVISION_HISTORY] = f"{history},{old}" if history else old
    if not exists:
        annotations[DESIRED_REPLICAS] = str(replicas(d))
        annotations[MAX_REPLICAS] = str(replicas(d) + max_surge(d))
        changed = True
    return changed


def _refresh(target: Obj, stored: Obj) -> Obj:
    target.clear()
    target.update(copy.deepcopy(stored))
    return target


class DeploymentController:
    def __init__(self, cluster: Cluster, deploy_rt: ResourceType, rs_rt: ResourceType) -> None:
        self.cluster = cluster
        self.deploy_rt = deploy_rt
        self.rs_rt = rs_rt
        self.selecting_all: set[str] = set()  # Deployments warned about an empty selector

    # writes ------------------------------------------------------------------------------

    def update_rs(self, rs: Obj, changed: Obj) -> Obj:
        meta = changed["metadata"]
        return _refresh(rs, self.cluster.update(self.rs_rt, meta["namespace"], meta["name"], changed))

    def update(self, d: Obj, changed: Obj, status: bool = False) -> Obj:
        meta = changed["metadata"]
        stored = self.cluster.update(
            self.deploy_rt, meta["namespace"], meta["name"], changed, subresource="status" if status else None
        )
        return _refresh(d, stored)

    def update_status(self, d: Obj, status: Obj) -> None:
        if status != d.get("status"):
            changed = copy.deepcopy(d)
            changed["status"] = status
            self.update(d, changed, status=True)

    def event(self, d: Obj, reason: str, message: str, type_: str = "Normal") -> None:
        self.cluster.event(d, reason, message, type_=type_, component="deployment-controller")

    # the reconcile -----------------------------------------------------------------------

    def sync(self) -> None:
        for d in self.cluster.store.list(DEPLOYMENTS):
            try:
                self._sync(copy.deepcopy(d))
            except ApiError:
                continue

    def _sync(self, d: Obj) -> None:
        if d["metadata"].get("deletionTimestamp"):
            return
        selector = d["spec"].get("selector") or {}
        if not (selector.get("matchLabels") or selector.get("matchExpressions")):
            if d["metadata"]["uid"] in self.selecting_all:
                return
            self.selecting_all.add(d["metadata"]["uid"])
            self.event(
                d,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
                "Warning",
            )
            return
        rs_list = self._claim(d)
        self._paused_conditions(d)
        if d["spec"].get("paused") or rollout.is_scaling_event(self, d, rs_list):
            self.sync_only(d, rs_list)
        elif d["spec"]["strategy"].get("type") == "Recreate":
            rollout.recreate(self, d, rs_list)
        else:
            rollout.rolling(self, d, rs_list)

    def _claim(self, d: Obj) -> list[Obj]:
        uid, selector = d["metadata"]["uid"], d["spec"].get("selector")
        out = []
        for rs in self.cluster.store.list(REPLICASETS, d["metadata"]["namespace"]):
            rs = copy.deepcopy(rs)
            ctrl, matches = controller_uid(rs), selects(selector, rs)
            if ctrl == uid and matches:
                out.append(rs)
            elif ctrl == uid:
                refs = [r for r in rs["metadata"]["ownerReferences"] if r.get("uid") != uid]
                rs["metadata"]["ownerReferences"] = refs
                self.cluster.write(self.rs_rt, rs)
            elif ctrl is None and matches and not rs["metadata"].get("deletionTimestamp"):
                rs["metadata"].setdefault("ownerReferences", []).append(owner_ref(d, "apps/v1", "Deployment"))
                out.append(copy.deepcopy(self.cluster.write(self.rs_rt, rs)))
        return out

    def _paused_conditions(self, d: Obj) -> None:
        status = copy.deepcopy(d.get("status") or {})
        cond = condition(status, "Progressing")
        if not has_deadline(d) or (cond is not None and cond.get("reason") == "ProgressDeadlineExceeded"):
            return
        paused_before = cond is not None and cond.get("reason") == "DeploymentPaused"
        if d["spec"].get("paused") and not paused_before:
            set_condition(status, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused")
        elif not d["spec"].get("paused") and paused_before:
            set_condition(status, "Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed")
        self.update_status(d, status)

    def sync_only(self, d: Obj, rs_list: list[Obj]) -> None:
        """Scaling (and a paused Deployment): no new ReplicaSet, status without Progressing moves."""
        new, olds = self.get_all(d, rs_list, create=False)
        rollout.scale(self, d, new, olds)
        if d["spec"].get("paused"):
            self.cleanup(olds, d)
        self.update_status(
            d, deploystatus.calculate(self.cluster.store, [*olds, *([new] if new else [])], new, d)
        )

    def sync_rollout_status(self, all_rss: list[Obj], new: Obj | None, d: Obj) -> None:
        self.update_status(d, deploystatus.rollout(self.cluster.store, all_rss, new, d))

    # ReplicaSets and revisions -----------------------------------------------------------

    def get_all(self, d: Obj, rs_list: list[Obj], create: bool) -> tuple[Obj | None, list[Obj]]:
        """(the ReplicaSet of the current template, the old ones), syncing revisions."""
        ordered = sorted(rs_list, key=by_creation)
        template = d["spec"]["template"]
        new = next((rs for rs in ordered if same_template(rs["spec"].get("template"), template)), None)
        olds = [rs for rs in ordered if rs is not new]
        new_revision = str(max((revision(rs) for rs in olds), default=0) + 1)
        if new is not None:
            self._sync_existing(d, new, new_revision)
        elif create:
            new = self._create_rs(d, rs_list, new_revision)
        return new, olds

    def _set_revision(self, d: Obj, value: str) -> None:
        if (d["metadata"].get("annotations") or {}).get(REVISION) != value:
            changed = copy.deepcopy(d)
            changed["metadata"].setdefault("annotations", {})[REVISION] = value
            self.update(d, changed)

    def _sync_existing(self, d: Obj, rs: Obj, new_revision: str) -> None:
        changed = copy.deepcopy(rs)
        dirty = set_new_rs_annotations(d, changed, new_revision, exists=True)
        min_ready = d["spec"].get("minReadySeconds")
        if changed["spec"].get("minReadySeconds") != min_ready:
            changed["spec"]["minReadySeconds"], dirty = min_ready, True
        if dirty:
            self.update_rs(rs, changed)
        self._set_revision(d, (rs["metadata"].get("annotations") or {}).get(REVISION, ""))
        if has_deadline(d) and condition(d.get("status") or {}, "Progressing") is None:
            status = copy.deepcopy(d.get("status") or {})
            message = f'Found new replica set "{rs["metadata"]["name"]}"'
            set_condition(status, "Progressing", "True", "FoundNewReplicaSet", message)
            self.update_status(d, status)

    def _create_rs(self, d: Obj, rs_list: list[Obj], new_revision: str) -> Obj | None:
        meta, spec = d["metadata"], d["spec"]
        collisions = (d.get("status") or {}).get("collisionCount")
        template = copy.deepcopy(spec["template"])
        digest = template_hash(template, collisions)
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = digest
        selector = copy.deepcopy(spec["selector"])
        selector.setdefault("matchLabels", {})[HASH_LABEL] = digest
        name = f"{meta['name']}-{digest}"
        count = rollout.new_rs_new_replicas(d, rs_list, None)
        rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "labels": dict(template["metadata"]["labels"]),
                "ownerReferences": [owner_ref(d, "apps/v1", "Deployment")],
            },
            "spec": {"replicas": count, "selector": selector, "template": template},
        }
        if spec.get("minReadySeconds") is not None:
            rs["spec"]["minReadySeconds"] = spec["minReadySeconds"]
        set_new_rs_annotations(d, rs, new_revision, exists=False)
        existing = self.cluster.store.get(REPLICASETS, meta["namespace"], name)
        if existing is not None:
            if controller_uid(existing) == meta["uid"] and same_template(
                existing["spec"]["template"], template
            ):
                return copy.deepcopy(existing)
            status = copy.deepcopy(d.get("status") or {})
            status["collisionCount"] = int(collisions or 0) + 1
            self.update_status(d, status)
            return None
        created = copy.deepcopy(self.cluster.create(self.rs_rt, meta["namespace"], rs))
        if count > 0:
            self.event(d, "ScalingReplicaSet", f"Scaled up replica set {name} from 0 to {count}")
        self._set_revision(d, new_revision)
        if has_deadline(d):
            status = copy.deepcopy(d.get("status") or {})
            set_condition(
                status, "Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{name}"'
            )
            self.update_status(d, status)
        return created

    def cleanup(self, olds: list[Obj], d: Obj) -> None:
        """Delete the oldest scaled-down ReplicaSets beyond revisionHistoryLimit."""
        limit = d["spec"].get("revisionHistoryLimit")
        if limit is None:
            return
        alive = [rs for rs in olds if not rs["metadata"].get("deletionTimestamp")]
        surplus = len(alive) - int(limit)
        if surplus <= 0:
            return
        alive.sort(key=lambda rs: (revision(rs), *by_creation(rs)))
        for rs in alive[:surplus]:
            meta = rs["metadata"]
            current = self.cluster.store.get(REPLICASETS, meta["namespace"], meta["name"]) or rs
            observed = status_int(current, "observedGeneration")
            if (
                status_int(current, "replicas")
                or replicas(current)
                or current["metadata"].get("generation", 1) > observed
            ):
                continue
            self.cluster.delete(self.rs_rt, meta["namespace"], meta["name"], propagation="Background")

    # status ------------------------------------------------------------------------------
