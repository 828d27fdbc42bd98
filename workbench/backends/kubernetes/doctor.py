"""What `workbench doctor` and the sidebar learn of a cluster: reachable, allowed, equipped.

Both reach the API server through the same client the backend uses; neither creates anything.
"""

from __future__ import annotations

from typing import Any

from ...config import Settings
from ...errors import WorkbenchError
from ..base import FAIL, INFO, OK, WARN, Check
from .settings import NAMESPACED_PERMISSIONS
from .trainjob import training_check

OPTIONAL_CRDS = {
    "daskclusters.kubernetes.dask.org": "Dask operator (dask workloads)",
    "localqueues.kueue.x-k8s.io": "Kueue (--queue)",
}


def _gpus(nodes: list[dict[str, Any]], resource: str) -> int:
    return sum(int(n.get("status", {}).get("allocatable", {}).get(resource, "0") or 0) for n in nodes)


def diagnose(settings: Settings, *, required: bool) -> list[Check]:
    """The API server, the permissions the backend uses, the optional CRDs, the resource
    metrics API, GPU capacity."""
    from .client import KubeClient
    from .metering import NO_API, available

    try:
        client = KubeClient(settings.kubernetes)
        major, minor = client.server_version()
    except WorkbenchError as exc:
        return [Check(FAIL if required else INFO, "kubernetes", exc.one_line())]
    host = client.api.configuration.host
    checks = [Check(OK, "kubernetes", f"API server v{major}.{minor} at {host}, namespace {client.namespace}")]
    missing = []
    for group, resource, verbs in NAMESPACED_PERMISSIONS:
        for verb in verbs:
            try:
                allowed = client.can_i(verb, group, resource)
            except WorkbenchError:
                allowed = False
            if not allowed:
                missing.append(f"{verb} {resource}")
    if missing:
        fix = f"apply `workbench rbac --namespace {client.namespace}`"
        checks.append(Check(FAIL, "permissions", f"missing: {', '.join(missing)} — {fix}"))
    else:
        checks.append(Check(OK, "permissions", "every verb the backend uses is allowed"))
    for crd, what in OPTIONAL_CRDS.items():
        found = client.crd_exists(crd)
        checks.append(Check(OK if found else INFO, what, "installed" if found else f"not found ({crd})"))
    checks.append(training_check(client))  # Kubeflow Trainer v2, the v1 operator, or none
    metrics = available(client)
    if metrics:
        checks.append(Check(OK, "resource metrics", "metrics.k8s.io is served (workbench top, describe)"))
    elif metrics is False:
        checks.append(Check(INFO, "resource metrics", NO_API))
    else:
        checks.append(
            Check(WARN, "resource metrics", "metrics.k8s.io did not answer (is metrics-server up?)")
        )
    nodes = client.nodes()
    if nodes is None:
        checks.append(
            Check(WARN, "GPU capacity", "may not list nodes; the preflight capacity check is skipped")
        )
    else:
        resource = settings.kubernetes.gpu_resource
        checks.append(Check(OK, "GPU capacity", f"{_gpus(nodes, resource)} {resource} on {len(nodes)} nodes"))
    return checks


def probe(settings: Settings, timeout: float) -> dict[str, Any]:
    """Reach the API server once (no retries, ``timeout`` per request) and count GPUs on the nodes."""
    config = settings.kubernetes.model_copy(update={"retries": 0, "request_timeout": timeout})
    answer: dict[str, Any] = {
        "available": False,
        "context": "in-cluster" if config.in_cluster else config.context,
        "namespace": config.namespace,
        "version": None,
        "gpus": None,
        "error": None,
    }
    try:
        from .client import KubeClient

        client = KubeClient(config)
        answer["namespace"] = client.namespace
        major, minor = client.server_version()
        nodes = client.nodes()
    except WorkbenchError as exc:
        answer["error"] = exc.one_line()
        return answer
    except ImportError as exc:
        answer["error"] = f"the kubernetes client is not installed ({exc})"
        return answer
    answer.update(available=True, version=f"{major}.{minor}")
    if nodes is not None:  # None: not allowed to list nodes
        answer["gpus"] = _gpus(nodes, config.gpu_resource)
    return answer
