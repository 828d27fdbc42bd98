"""`workbench doctor`: what is configured, what can be reached, what is allowed."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .config import Settings, config_path
from .errors import WorkbenchError

OK, INFO, WARN, FAIL = "ok", "info", "warn", "FAIL"
OPTIONAL_CRDS = {
    "daskclusters.kubernetes.dask.org": "Dask operator (dask workloads)",
    "pytorchjobs.kubeflow.org": "Kubeflow training operator (train --operator kubeflow)",
    "localqueues.kueue.x-k8s.io": "Kueue (--queue)",
}


@dataclass(frozen=True)
class Check:
    level: str
    what: str
    detail: str


def _local(settings: Settings) -> list[Check]:
    from .backends.local.gpus import detect_gpus

    checks = []
    path = config_path()
    checks.append(
        Check(
            OK if path.is_file() else INFO, "config file", f"{path}" + ("" if path.is_file() else " (none)")
        )
    )
    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    writable = os.access(home, os.W_OK)
    checks.append(
        Check(
            OK if writable else FAIL, "WORKBENCH_HOME", f"{home}" + ("" if writable else " is not writable")
        )
    )
    gpus = settings.local_gpus if settings.local_gpus is not None else detect_gpus()
    checks.append(Check(OK, "local GPUs", ", ".join(gpus) if gpus else "none"))
    return checks


def _kubernetes(settings: Settings) -> list[Check]:
    from .backends.kubernetes.client import KubeClient
    from .backends.kubernetes.settings import NAMESPACED_PERMISSIONS

    required = settings.backend == "kubernetes"
    try:
        client = KubeClient(settings.kubernetes)
        major, minor = client.server_version()
    except WorkbenchError as exc:
        return [Check(FAIL if required else INFO, "kubernetes", exc.one_line())]
    checks = [
        Check(
            OK,
            "kubernetes",
            f"API server v{major}.{minor} at {client.api.configuration.host}, namespace {client.namespace}",
        )
    ]
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
        checks.append(
            Check(
                FAIL,
                "permissions",
                f"missing: {', '.join(missing)} — apply `workbench rbac --namespace {client.namespace}`",
            )
        )
    else:
        checks.append(Check(OK, "permissions", "every verb the backend uses is allowed"))
    for crd, what in OPTIONAL_CRDS.items():
        found = client.crd_exists(crd)
        checks.append(Check(OK if found else INFO, what, "installed" if found else f"not found ({crd})"))
    nodes = client.nodes()
    if nodes is None:
        checks.append(
            Check(WARN, "GPU capacity", "may not list nodes; the preflight capacity check is skipped")
        )
    else:
        resource = settings.kubernetes.gpu_resource
        total = sum(int(n.get("status", {}).get("allocatable", {}).get(resource, "0") or 0) for n in nodes)
        checks.append(Check(OK, "GPU capacity", f"{total} {resource} on {len(nodes)} nodes"))
    return checks


def run_checks(settings: Settings) -> list[Check]:
    """Every check, local first."""
    return _local(settings) + _kubernetes(settings)
