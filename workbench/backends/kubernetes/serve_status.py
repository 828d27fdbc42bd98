"""Where an endpoint's Deployments stand, read as ``kubectl rollout`` reads them (pure; no I/O).

- :func:`progress`: ``kubectl rollout status`` — the controller has observed the change, the
  new ReplicaSet has every replica updated and available, the old ones are gone; a
  ``Progressing`` condition with reason ``ProgressDeadlineExceeded`` is a failure;
- :func:`crash`: a pod of the new revision whose container keeps failing (the model server
  exits 3 when the model does not load): its termination message, or its reason;
- :func:`rs_for_revision` and :func:`undo_patch`: ``kubectl rollout undo`` — the
  Deployment's ReplicaSets by their ``deployment.kubernetes.io/revision``, the previous one
  by default, the template copied back without the ``pod-template-hash`` label;
- :func:`traffic`: how the Service spreads requests now, by the ready pods of each revision;
  :func:`canary_replicas`: how many canary pods carry a given share of them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ...errors import Conflict, NotFound, SpecError
from ...spec_serve import MAX_REPLICAS
from .serve_revision import CAUSE_ANNOTATION, MODEL_URI_ANNOTATION
from .status import timestamp

REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
#: Deployment annotations ``kubectl rollout undo`` does not copy back from a ReplicaSet
SKIPPED_ANNOTATIONS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)
#: the replica's exit code when the model does not load: it fails the same way every time
LOAD_FAILED_EXIT = 3
_CRASH_RESTARTS = 2


def meta(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (obj or {}).get("metadata") or {}


def notes_of(obj: Mapping[str, Any] | None) -> Mapping[str, str]:
    return meta(obj).get("annotations") or {}


def revision_number(obj: Mapping[str, Any] | None) -> int:
    """The ``deployment.kubernetes.io/revision`` of a Deployment or ReplicaSet (0: none yet)."""
    try:
        return int(notes_of(obj).get(REVISION, 0))
    except ValueError:
        return 0


def owned_by(replica_set: Mapping[str, Any], deployment: Mapping[str, Any]) -> bool:
    uid, name = meta(deployment).get("uid"), meta(deployment).get("name")
    for ref in meta(replica_set).get("ownerReferences") or []:
        if ref.get("kind") == "Deployment" and ref.get("name") == name and (not uid or ref.get("uid") == uid):
            return True
    return False


def replica_sets_of(
    deployment: Mapping[str, Any] | None, replica_sets: Iterable[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The Deployment's ReplicaSets, oldest revision first."""
    if deployment is None:
        return []
    owned = [rs for rs in replica_sets if owned_by(rs, deployment)]
    return sorted(owned, key=revision_number)


def without_hash(template: Mapping[str, Any]) -> dict[str, Any]:
    """A pod template without the label the controller adds to its ReplicaSet's copy."""
    copied = copy.deepcopy(dict(template))
    labels = (copied.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return copied


def template_of(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return ((obj or {}).get("spec") or {}).get("template") or {}


def new_replica_set(
    deployment: Mapping[str, Any] | None, replica_sets: Sequence[Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """The ReplicaSet of the Deployment's current template (None until the controller made it)."""
    wanted = without_hash(template_of(deployment))
    matching = [rs for rs in replica_sets if without_hash(template_of(rs)) == wanted]
    return max(matching, key=revision_number, default=None)


def current_revision(deployment: Mapping[str, Any] | None, replica_sets: Sequence[Mapping[str, Any]]) -> int:
    """The revision the Deployment's template is (or will be, once the controller sees it)."""
    new = new_replica_set(deployment, replica_sets)
    if new is not None:
        return revision_number(new)
    return max((revision_number(rs) for rs in replica_sets), default=0) + 1


def rs_for_revision(replica_sets: Sequence[Mapping[str, Any]], to_revision: int | None) -> Mapping[str, Any]:
    """The ReplicaSet ``kubectl rollout undo`` goes back to: ``to_revision``, or by default the
    one with the highest revision below the newest.

    Raises:
        NotFound: no such revision (it may be older than the history kept).
        Conflict: there is no previous revision.
    """
    if to_revision:
        for rs in replica_sets:
            if revision_number(rs) == to_revision:
                return rs
        kept = ", ".join(str(revision_number(rs)) for rs in replica_sets) or "none"
        raise NotFound(
            f"unable to find revision {to_revision} in the history (kept: {kept})",
            value=to_revision,
            hint="`workbench rollout history NAME` lists the revisions",
        )
    ordered = sorted(replica_sets, key=revision_number)
    if len(ordered) < 2:
        raise Conflict(
            "there is no previous revision to go back to",
            value=None,
            hint="roll out a change first (`workbench rollout NAME FILE`)",
        )
    return ordered[-2]


def undo_patch(deployment: Mapping[str, Any], replica_set: Mapping[str, Any]) -> dict[str, Any]:
    """What ``kubectl rollout undo`` writes: the ReplicaSet's template (without its hash label)
    and its annotations except the controller's own (kept from the Deployment here, so that
    the spec annotation of a Deployment made elsewhere survives)."""
    notes = dict(notes_of(deployment))
    notes.update({k: v for k, v in notes_of(replica_set).items() if k not in SKIPPED_ANNOTATIONS})
    notes.pop(REVISION, None)
    return {"template": without_hash(template_of(replica_set)), "annotations": notes}


# -- progress --------------------------------------------------------------------------------------
def _condition(obj: Mapping[str, Any] | None, kind: str) -> Mapping[str, Any]:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


def progress(deployment: Mapping[str, Any]) -> tuple[str, str]:
    """``(phase, message)`` of a Deployment's rollout, as ``kubectl rollout status`` says it."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    if int(meta(deployment).get("generation") or 0) > int(status.get("observedGeneration") or 0):
        return "progressing", "waiting for the Deployment controller to see the change"
    cond = _condition(deployment, "Progressing")
    if cond.get("reason") == "ProgressDeadlineExceeded":
        return (
            "failed",
            f"not ready within {spec.get('progressDeadlineSeconds', 600)}s (ProgressDeadlineExceeded)",
        )
    wanted = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < wanted:
        return "progressing", f"{updated} of {wanted} new replicas updated"
    if total > updated:
        return "progressing", f"{total - updated} old replicas are pending termination"
    if available < updated:
        return "progressing", f"{available} of {updated} updated replicas are available"
    return "complete", ""


def _main_status(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return next(
        (s for s in statuses if s.get("name") in ("main", "kserve-container")),
        statuses[0] if statuses else {},
    )


def crash(pods: Iterable[Mapping[str, Any]]) -> tuple[Mapping[str, Any], str] | None:
    """A pod whose container keeps failing (the model did not load, or it crashed again and
    again) and what its last termination said: ``(pod, message)``; the message is "" when the
    container wrote none (then its log says why)."""
    for pod in pods:
        status = _main_status(pod)
        state = status.get("state") or {}
        ended = state.get("terminated") or (status.get("lastState") or {}).get("terminated") or {}
        code = ended.get("exitCode")
        if code in (None, 0):
            continue
        waiting = (state.get("waiting") or {}).get("reason")
        if code != LOAD_FAILED_EXIT and int(status.get("restartCount") or 0) < _CRASH_RESTARTS:
            continue
        lines = [line.strip() for line in str(ended.get("message") or "").splitlines() if line.strip()]
        if lines:
            return pod, lines[-1][:300]
        reason = ended.get("reason") or waiting or "Error"
        return pod, "" if reason == "Error" else f"{reason} (exit code {code})"
    return None


def pods_of(
    replica_set: Mapping[str, Any] | None, pods: Iterable[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The pods of a ReplicaSet (by its ``pod-template-hash``)."""
    digest = (meta(replica_set).get("labels") or {}).get(HASH_LABEL)
    if replica_set is None or not digest:
        return []
    return [p for p in pods if (meta(p).get("labels") or {}).get(HASH_LABEL) == digest]


def is_ready(pod: Mapping[str, Any]) -> bool:
    if meta(pod).get("deletionTimestamp"):
        return False
    return _condition(pod, "Ready").get("status") == "True"


def traffic(shares: Mapping[int, int]) -> dict[str, int]:
    """Percent of requests per revision from its ready pods (the Service spreads them evenly);
    rounding goes to the largest share so the whole is 100."""
    total = sum(shares.values())
    if total <= 0:
        return {}
    percent = {str(rev): 100 * count // total for rev, count in sorted(shares.items()) if count}
    biggest = max(percent, key=lambda rev: (percent[rev], int(rev)))
    percent[biggest] += 100 - sum(percent.values())
    return percent


def history_row(replica_set: Mapping[str, Any], *, canary: bool = False) -> dict[str, Any]:
    """One revision of ``workbench rollout history`` from a ReplicaSet (or a canary Deployment)."""
    template = template_of(replica_set)
    notes = notes_of(replica_set)
    containers = (template.get("spec") or {}).get("containers") or [{}]
    return {
        "revision": revision_number(replica_set),
        "created": timestamp(meta(replica_set).get("creationTimestamp")),
        "cause": notes.get(CAUSE_ANNOTATION, ""),
        "model_uri": ((template.get("metadata") or {}).get("annotations") or {}).get(MODEL_URI_ANNOTATION),
        "image": containers[0].get("image"),
        "canary": canary,
    }


def canary_replicas(stable: int, percent: int) -> int:
    """Pods for a canary beside ``stable`` pods so that it gets about ``percent`` of the requests
    (the Service spreads them over every ready pod), at most 100 pods in all.

    Raises:
        SpecError: no count comes within 10 points; the message names the smallest
            ``--replicas`` that would do, and ``--operator kserve``.
    """
    if percent <= 0:
        return 0

    def best(main: int) -> tuple[float, int]:
        counts = range(1, max(2, MAX_REPLICAS - main + 1))
        pods = min(counts, key=lambda k: abs(100 * k / (main + k) - percent))
        return abs(100 * pods / (main + pods) - percent), pods

    off, pods = best(stable)
    if off <= 10:
        return pods
    enough = next((m for m in range(stable + 1, MAX_REPLICAS) if best(m)[0] <= 10), None)
    share = round(100 * pods / (stable + pods))
    raise SpecError(
        f"--canary {percent} cannot be carried by replica counts: beside {stable} stable "
        f"replica{'s' if stable != 1 else ''} the nearest split sends {share}% to the canary",
        value=percent,
        hint=(f"scale to --replicas {enough} or more first, " if enough else "")
        + "or use --operator kserve (traffic split by percent)",
    )
