"""apps/v1, autoscaling/v2, policy/v1 and discovery.k8s.io/v1 objects: defaults, validation, helpers.

The served types themselves are listed in resources.py. The autoscaling/v2
HorizontalPodAutoscaler and the policy/v1 PodDisruptionBudget are stored and served with the
API server's defaults, but no controller acts on them: an HPA never changes a Deployment's
replicas here (its status stays as written), and a PDB's status is computed by the
endpoints controller (services.py) without any eviction API behind it.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from typing import Any

from .selectors import match_label_selector_object
from .store import Obj

DEPLOYMENTS = ("apps", "deployments")
REPLICASETS = ("apps", "replicasets")
HPAS = ("autoscaling", "horizontalpodautoscalers")
PDBS = ("policy", "poddisruptionbudgets")
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
#: Deployment annotations never copied onto its ReplicaSets
NOT_COPIED = {
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
}
_SAFE = "bcdfghjklmnpqrstvwxz2456789"
_PERCENT = re.compile(r"^(\d+)%$")
MAX_INT32 = 2**31 - 1


def parse_time(text: str | None) -> float | None:
    """An RFC 3339 timestamp (second resolution, as the API writes them) as epoch seconds."""
    if not text:
        return None
    return dt.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC).timestamp()


# int-or-percent and the rolling update fenceposts ------------------------------------------


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """An IntOrString against ``total``: "25%" of 2 is 1 rounded up and 0 rounded down."""
    if isinstance(value, int):
        return value
    match = _PERCENT.match(str(value))
    if not match:
        raise ValueError(f"invalid value for IntOrString: {value!r}")
    product = int(match[1]) * total
    return -(-product // 100) if round_up else product // 100


def rolling(d: Obj) -> bool:
    return ((d.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def replicas(obj: Obj) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def fenceposts(d: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable): surge rounded up, unavailable down; never both 0."""
    params = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    desired = replicas(d)
    surge = scaled_value(params.get("maxSurge", "25%"), desired, True)
    unavailable = scaled_value(params.get("maxUnavailable", "25%"), desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: Obj) -> int:
    return fenceposts(d)[0] if rolling(d) else 0


def max_unavailable(d: Obj) -> int:
    if not rolling(d) or replicas(d) == 0:
        return 0
    return min(fenceposts(d)[1], replicas(d))


# templates, ownership, pods ------------------------------------------------------------------


def template_hash(template: Obj, collision_count: int | None = None) -> str:
    """FNV-1a (32 bit) of the template, plus the collision count, in the safe alphabet."""
    data = json.dumps(semantic(template), sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += int(collision_count).to_bytes(4, "little")
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE[ord(ch) % len(_SAFE)] for ch in str(value))


def semantic(value: Any) -> Any:
    """``value`` without nulls and empty maps/lists, which the API's semantic equality ignores
    (a client that round-trips a template through typed objects adds ``creationTimestamp: null``)."""
    if isinstance(value, dict):
        items = ((k, semantic(v)) for k, v in value.items())
        return {k: v for k, v in items if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [semantic(v) for v in value]
    return value


def without_hash(template: Obj | None) -> Obj:
    out = semantic(copy.deepcopy(template or {}))
    labels = (out.get("metadata") or {}).get("labels")
    if labels is not None:
        labels.pop(HASH_LABEL, None)
    return dict(semantic(out))


def same_template(a: Obj | None, b: Obj | None) -> bool:
    return without_hash(a) == without_hash(b)


def revision(obj: Obj) -> int:
    try:
        return int((obj["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def controller_uid(obj: Obj) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def owner_ref(owner: Obj, api_version: str, kind: str) -> Obj:
    meta = owner["metadata"]
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def selects(selector: Obj | None, obj: Obj) -> bool:
    """A LabelSelector with something in it matches the object's labels (an empty one: nothing)."""
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return False
    return match_label_selector_object(selector, obj["metadata"].get("labels") or {})


def by_creation(obj: Obj) -> tuple[float, str]:
    return parse_time(obj["metadata"].get("creationTimestamp")) or 0.0, obj["metadata"]["name"]


def active_pod(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") and not pod["metadata"].get(
        "deletionTimestamp"
    )


def ready_condition(pod: Obj) -> Obj | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") == "True":
            return dict(cond)
    return None


def pod_available(pod: Obj, min_ready: int, now: float) -> bool:
    cond = ready_condition(pod)
    if cond is None:
        return False
    if min_ready <= 0:
        return True
    since = parse_time(cond.get("lastTransitionTime"))
    return since is not None and since + min_ready <= now


def status_int(obj: Obj, field: str) -> int:
    return int((obj.get("status") or {}).get(field) or 0)


def complete(d: Obj, status: Obj) -> bool:
    want = replicas(d)
    return (
        int(status.get("updatedReplicas") or 0) == want
        and int(status.get("replicas") or 0) == want
        and int(status.get("availableReplicas") or 0) == want
        and int(status.get("observedGeneration") or 0) >= int(d["metadata"].get("generation", 1))
    )


def compact(status: Obj, *fields: str) -> Obj:
    """Drop zero counts, as the API omits them (``omitempty``)."""
    for field in fields:
        if not status.get(field):
            status.pop(field, None)
    return status


# defaults and validation -----------------------------------------------------------------


def defaults(plural: str, obj: Obj, pod_defaults: Any) -> None:
    """The API server's defaulting of these kinds (on create and on update)."""
    spec = obj.setdefault("spec", {})
    if plural in ("deployments", "replicasets"):
        spec.setdefault("replicas", 1)
        if plural == "deployments":
            strategy = spec.setdefault("strategy", {})
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                params = strategy.setdefault("rollingUpdate", {})
                params.setdefault("maxUnavailable", "25%")
                params.setdefault("maxSurge", "25%")
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
        template = spec.setdefault("template", {})
        template.setdefault("metadata", {})
        pod_defaults(template.setdefault("spec", {}), in_template=True)
    elif plural == "horizontalpodautoscalers":
        spec.setdefault("minReplicas", 1)
        if not spec.get("metrics"):
            spec["metrics"] = [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
                }
            ]


def _int_or_percent_errors(value: Any, field: str) -> list[tuple[str, str]]:
    if value is None or (isinstance(value, int) and value >= 0) or _PERCENT.match(str(value)):
        return []
    return [(field, f'Invalid value: "{value}": must be a non-negative integer or a percentage')]


def errors(plural: str, obj: Obj, old: Obj | None) -> list[tuple[str, str]]:
    """What the API server refuses in a Deployment, ReplicaSet, HPA or PDB (pod template aside)."""
    spec = obj.get("spec") or {}
    out: list[tuple[str, str]] = []
    if plural in ("deployments", "replicasets"):
        selector = spec.get("selector")
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            out.append(("spec.selector", "Required value"))
        elif not match_label_selector_object(selector, labels):
            out.append(
                (
                    "spec.template.metadata.labels",
                    f"Invalid value: {json.dumps(labels)}: `selector` does not match template `labels`",
                )
            )
        elif (
            old is not None
            and plural == "deployments"
            and selector != (old.get("spec") or {}).get("selector")
        ):
            out.append(("spec.selector", f"Invalid value: {json.dumps(selector)}: field is immutable"))
        if int(spec.get("replicas") or 0) < 0:
            out.append(("spec.replicas", "Invalid value: must be greater than or equal to 0"))
    if plural == "deployments":
        strategy = spec.get("strategy") or {}
        kind = strategy.get("type")
        if kind not in ("RollingUpdate", "Recreate"):
            out.append(
                (
                    "spec.strategy.type",
                    f'Unsupported value: "{kind}": supported values: "Recreate", "RollingUpdate"',
                )
            )
        params = strategy.get("rollingUpdate")
        if kind == "Recreate" and params is not None:
            out.append(
                (
                    "spec.strategy.rollingUpdate",
                    "Forbidden: may not be specified when strategy `type` is 'Recreate'",
                )
            )
        if kind == "RollingUpdate" and params:
            out += _int_or_percent_errors(params.get("maxSurge"), "spec.strategy.rollingUpdate.maxSurge")
            out += _int_or_percent_errors(
                params.get("maxUnavailable"), "spec.strategy.rollingUpdate.maxUnavailable"
            )
            surge = scaled_value(params.get("maxSurge", 0), 100, True) if not out else 1
            if surge == 0 and scaled_value(params.get("maxUnavailable", 0), 100, True) == 0:
                out.append(
                    (
                        "spec.strategy.rollingUpdate.maxUnavailable",
                        "Invalid value: 0: may not be 0 when `maxSurge` is 0",
                    )
                )
        deadline, min_ready = spec.get("progressDeadlineSeconds"), int(spec.get("minReadySeconds") or 0)
        if deadline is not None and int(deadline) <= min_ready:
            out.append(
                (
                    "spec.progressDeadlineSeconds",
                    f"Invalid value: {deadline}: must be greater than minReadySeconds",
                )
            )
    elif plural == "horizontalpodautoscalers":
        low, high = spec.get("minReplicas", 1), spec.get("maxReplicas")
        if high is None:
            out.append(("spec.maxReplicas", "Required value"))
        elif int(high) < int(low or 1):
            out.append(
                ("spec.maxReplicas", f"Invalid value: {high}: must be greater than or equal to `minReplicas`")
            )
        if not (spec.get("scaleTargetRef") or {}).get("name"):
            out.append(("spec.scaleTargetRef.name", "Required value"))
    elif plural == "poddisruptionbudgets":
        if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
            out.append(("spec", "Invalid value: minAvailable and maxUnavailable cannot be both set"))
        for field in ("minAvailable", "maxUnavailable"):
            out += _int_or_percent_errors(spec.get(field), f"spec.{field}")
    return out
