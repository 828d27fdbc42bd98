"""`workbench doctor`: what is configured, what can be reached, what is allowed."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .config import Settings, config_path
from .errors import StoreError, WorkbenchError

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


def _store(settings: Settings) -> list[Check]:
    from .repair import unknown
    from .store import Store

    try:
        store = Store(settings.db_path)
    except StoreError as exc:
        return [Check(FAIL, "store", exc.one_line())]
    try:
        problem = store.check()
        missing = unknown(store, settings.runs_dir)
    except StoreError as exc:
        return [Check(FAIL, "store", exc.one_line())]
    finally:
        store.close()
    if problem:
        detail = f"{settings.db_path} is corrupt ({problem}) — run `workbench doctor --repair`"
        return [Check(FAIL, "store", detail)]
    checks = [Check(OK, "store", f"{settings.db_path}" + (" (read-only)" if store.read_only else ""))]
    if missing:
        names = ", ".join(w.id for w in missing[:5]) + (", …" if len(missing) > 5 else "")
        detail = f"{len(missing)} without a record ({names}) — run `workbench doctor --repair`"
        checks.append(Check(WARN, "run directories", detail))
    return checks


def run_checks(settings: Settings) -> list[Check]:
    """Every check, local first."""
    return _local(settings) + _store(settings) + _kubernetes(settings)


def repair(settings: Settings) -> list[str]:
    """``workbench doctor --repair``: a corrupt store moved aside and made new, and a record
    rebuilt for every run directory the store does not know. One line per thing done."""
    from .repair import move_aside, rebuild
    from .store import Store

    done = []
    store: Store | None = None
    try:
        store = Store(settings.db_path)
        problem = store.check()
    except StoreError as exc:
        if exc.reason != "corrupt":
            raise
        problem = exc.message
    if problem or store is None:
        if store is not None:
            store.close()
        aside = move_aside(settings.db_path)
        done.append(f"moved the corrupt store aside to {aside} ({problem})")
        store = Store(settings.db_path)
    try:
        store.claim_rebuild()  # this rebuild is the one a new file asks for
        rebuilt = rebuild(store, settings.runs_dir)
    finally:
        store.close()
    if rebuilt:
        names = ", ".join(w.id for w in rebuilt)
        done.append(f"rebuilt {len(rebuilt)} record(s) from their run directories: {names}")
    else:
        done.append("every run directory has its record; nothing to rebuild")
    return done
