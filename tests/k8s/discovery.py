"""Discovery (/version, /api, /apis, …), the minimal OpenAPI v3 documents kubectl needs, and
SelfSubjectAccessReview answers."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from .errors import ApiError
from .resources import Registry

Obj = dict[str, Any]
NOT_FOUND = ApiError(404, "NotFound", "the server could not find the requested resource", {})


def discovery(registry: Registry, path: str, version: str, url: str) -> Any:
    """The discovery, version and OpenAPI documents; raises a 404 ApiError for other paths."""
    parts = [p for p in path.split("/") if p]
    path = "/" + "/".join(parts)
    if path == "/version":
        major, minor = version.lstrip("v").split(".")[:2]
        return {
            "major": major,
            "minor": minor,
            "gitVersion": version,
            "gitCommit": "emulator",
            "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z",
            "goVersion": "go1.24",
            "compiler": "gc",
            "platform": "linux/amd64",
        }
    if path in ("/healthz", "/livez", "/readyz"):
        return "ok"
    if parts == ["api"]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": url.split("//", 1)[-1]}
            ],
        }
    if parts == ["apis"]:
        return registry.group_list()
    if parts == ["openapi", "v3"]:
        return openapi_index(registry)
    if parts[:2] == ["openapi", "v3"]:
        gv = parts[2:]
        doc = openapi_document(registry, "" if gv[:1] == ["api"] else "/".join(gv[1:2]), gv[-1])
        if doc is None or len(gv) not in (2, 3):
            raise NOT_FOUND
        return doc
    if len(parts) == 2 and parts[0] == "api":
        doc = registry.resource_list("", parts[1])
    elif len(parts) == 2 and parts[0] == "apis":
        doc = registry.api_group(parts[1])
    elif len(parts) == 3 and parts[0] == "apis":
        doc = registry.resource_list(parts[1], parts[2])
    else:
        doc = None
    if doc is None:
        raise NOT_FOUND
    return doc


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_index(registry: Registry) -> dict[str, Any]:
    """/openapi/v3: one entry per group/version (kubectl apply reads it)."""
    paths = {}
    for group, version in registry.types:
        doc = json.dumps(openapi_document(registry, group, version), sort_keys=True)
        digest = hashlib.sha256(doc.encode()).hexdigest()[:16].upper()
        paths[_gv_path(group, version)] = {
            "serverRelativeURL": f"/openapi/v3/{_gv_path(group, version)}?hash={digest}"
        }
    return {"paths": paths}


def openapi_document(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    """A minimal OpenAPI v3 document: the PATCH operations, so kubectl sees fieldValidation support."""
    by_plural = registry.types.get((group, version))
    if by_plural is None:
        return None
    paths: dict[str, Any] = {}
    for rt in by_plural.values():
        scope = "/namespaces/{namespace}" if rt.namespaced else ""
        gvk = {"group": group, "version": version, "kind": rt.kind}
        params = [
            {"name": n, "in": "query", "schema": {"type": "string"}}
            for n in ("dryRun", "fieldManager", "fieldValidation")
        ]
        paths[f"/{_gv_path(group, version)}{scope}/{rt.plural}/{{name}}"] = {
            "patch": {
                "operationId": f"patch{rt.kind}",
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }


def access_review(body: Any, is_denied: Callable[[str, str, str], bool]) -> Obj:
    """Answer a SelfSubjectAccessReview from the emulator's deny list."""
    review = dict(body or {})
    attrs = (review.get("spec") or {}).get("resourceAttributes")
    allowed = True
    if attrs is not None:
        resource = attrs.get("resource", "")
        if attrs.get("subresource"):
            resource = f"{resource}/{attrs['subresource']}"
        allowed = not is_denied(attrs.get("verb", ""), attrs.get("group", ""), resource)
    review.update({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview"})
    review.setdefault("metadata", {})["creationTimestamp"] = None
    review["status"] = (
        {"allowed": allowed} if not allowed else {"allowed": True, "reason": "allowed by the emulator"}
    )
    return review
