"""The ``scale`` subresource of Deployments and ReplicaSets (autoscaling/v1 Scale), for
``kubectl scale`` and clients' ``*_scale`` calls: GET, PUT and PATCH change spec.replicas."""

from __future__ import annotations

from typing import Any

from .cluster import Cluster
from .errors import bad_request, conflict
from .patching import json_patch, merge_patch, strategic_merge_patch
from .resources import ResourceType
from .store import Obj


def _selector_text(selector: Obj | None) -> str:
    selector = selector or {}
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr.get("operator"), expr.get("key"), ",".join(sorted(expr.get("values") or []))
        terms.append(
            {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key}.get(
                op, f"!{key}"
            )
        )
    return ",".join(terms)


def view(obj: Obj) -> Obj:
    meta = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
        },
        "spec": {"replicas": int((obj.get("spec") or {}).get("replicas") or 0)},
        "status": {
            "replicas": int((obj.get("status") or {}).get("replicas") or 0),
            "selector": _selector_text((obj.get("spec") or {}).get("selector")),
        },
    }


def serve(
    cluster: Cluster,
    rt: ResourceType,
    namespace: str,
    name: str,
    method: str,
    ctype: str,
    body: Any,
    dry: bool,
) -> Obj:
    """The Scale after GET, PUT or PATCH of ``<plural>/<name>/scale``."""
    obj = cluster.get(rt, namespace, name)
    current = view(obj)
    if method == "GET":
        return current
    if method == "PATCH":
        patch = (
            json_patch
            if "json-patch" in ctype
            else strategic_merge_patch
            if "strategic" in ctype
            else merge_patch
        )
        body = patch(current, body)
    if not isinstance(body, dict) or not isinstance((body.get("spec") or {}).get("replicas", 0), int):
        raise bad_request("the body of the request was not a Scale")
    wanted = (body.get("metadata") or {}).get("resourceVersion")
    if method == "PUT" and wanted and wanted != obj["metadata"]["resourceVersion"]:
        raise conflict(rt.plural, rt.group, name)
    changed = dict(obj, spec={**obj["spec"], "replicas": int((body.get("spec") or {}).get("replicas") or 0)})
    return view(cluster.update(rt, namespace, name, changed, dry_run=dry))
