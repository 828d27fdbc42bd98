"""Every Kubernetes object of a workload, from its spec and payload (no I/O).

The one entry point ``--dry-run``, ``workbench export`` and the backend's submit share: it
dispatches to the builder of the spec's kind and records the spec on the main object, so
that a workload launched elsewhere can be found again (``discover``). It puts the workload's
NetworkPolicy first (no pod of it exists unguarded) and runs every policy check on every
object (:func:`refuse_unsafe`): a profile or a setting that yields a bad manifest is refused
in one line, before anything is created or printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...config import Settings
from ...errors import SpecError
from ...spec import CodeSpec, CommonSpec, DaskSpec, NotebookSpec, PodSpec, ServeSpec, TrainSpec
from ..base import Payload
from .dask_manifests import DASHBOARD_PORT, SCHEDULER_PORT, build_dask_manifests
from .hardening import MIN_UID, check_workload, network_policy
from .logs import with_results_key
from .manifests import build_pod_manifests, with_env
from .notebook_manifests import build_notebook_manifests
from .policy import check_manifest
from .serve_manifests import build_serve_manifests, serve_network_policy
from .settings import KubeSettings, Toleration, workload_labels
from .train_manifests import build_train_manifests
from .trainjob_manifests import with_trainer_env

SPEC_ANNOTATION = "workbench.jupyter.org/spec"
LATEST_VERSION = (1, 33)


def kube_settings(settings: Settings, version: tuple[int, int] | None = None) -> KubeSettings:
    """What the manifest builders need, from the workbench settings and the server version."""
    config = settings.kubernetes
    tolerations = (
        tuple(Toleration(**t) for t in config.gpu_tolerations)  # type: ignore[arg-type]
        if config.gpu_tolerations is not None
        else (Toleration("nvidia.com/gpu"),)
    )
    if version is None and config.version:
        major, _, minor = config.version.partition(".")
        version = (int(major), int(minor.split(".")[0] or 0))
    return KubeSettings(
        namespace=config.namespace or "default",
        image=settings.image,
        gpu_resource=config.gpu_resource,
        gpu_node_label=config.gpu_node_label,
        gpu_tolerations=tolerations,
        service_account=config.service_account,
        image_pull_secrets=tuple(config.image_pull_secrets),
        ttl_seconds_after_finished=config.ttl_seconds_after_finished,
        server_version=version or LATEST_VERSION,
        runtime_uid=config.run_as_user,
        default_cpu=config.default_cpu,
        default_memory=config.default_memory,
        client_labels=tuple(sorted(config.client_labels.items())),
        dask_operator_namespace=config.dask_operator_namespace,
    )


def payload_parts(spec: CodeSpec, payload: Payload) -> tuple[str | bytes, str]:
    """The code and the file name it gets in the payload."""
    if payload.code is not None:
        return payload.code, "cell.py"
    return payload.script or b"", Path(payload.script_name or "script.py").name


def build_manifests(
    workload_id: str, spec: CommonSpec, payload: Payload, settings: Settings, kube: KubeSettings
) -> list[dict[str, Any]]:
    """Every object of a workload, its NetworkPolicy first, checked against every policy.

    Raises:
        SpecError: an invalid spec, or an object that breaks a policy check; nothing exists yet.
    """
    env = payload.extra.get("env", {})
    # a TrainJob's node env lives in its trainer block, not in its runtime patch
    docs = with_trainer_env(with_env(_kind_manifests(workload_id, spec, payload, settings, kube), env), env)
    kind = str(getattr(spec, "kind", "pod"))
    labels = workload_labels(workload_id, kind, settings.owner, spec.labels)
    ports = (SCHEDULER_PORT, DASHBOARD_PORT) if isinstance(spec, DaskSpec) else ()
    policy = (
        serve_network_policy(workload_id, labels, kube, kserve=spec.operator == "kserve")
        if isinstance(spec, ServeSpec)
        else network_policy(workload_id, labels, kube, client_ports=ports)
    )
    docs = [policy, *docs]
    refuse_unsafe(docs)
    return docs


def refuse_unsafe(docs: list[dict[str, Any]]) -> None:
    """Run every policy check on ``docs`` (the objects about to be created or printed).

    Raises:
        SpecError: naming the first problem (and how many more) and what to change.
    """
    problems = [problem for doc in docs for problem in check_manifest(doc)] + check_workload(docs)
    if not problems:
        return
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    hint = "change the profile or the kubernetes settings that produce it; nothing was created"
    if any(word in problems[0] for word in ("runAsUser", "runAsGroup", "fsGroup")):
        hint = f"set kubernetes.run_as_user to {MIN_UID} or more (the workbench images run as 10001)"
    raise SpecError(
        f"refusing a manifest that breaks the cluster policy: {problems[0]}{more}",
        value=problems[0],
        hint=hint,
    )


def _kind_manifests(
    workload_id: str, spec: CommonSpec, payload: Payload, settings: Settings, kube: KubeSettings
) -> list[dict[str, Any]]:
    """The objects of the spec's kind, the spec recorded on the main one."""
    if isinstance(spec, DaskSpec):
        docs = build_dask_manifests(workload_id, spec, owner=settings.owner, settings=kube)
        docs[0]["metadata"].setdefault("annotations", {})[SPEC_ANNOTATION] = spec.model_dump_json()
        return docs
    if isinstance(spec, NotebookSpec):
        notebook, config = payload.extra.get("notebook"), payload.extra.get("config")
        if not isinstance(notebook, bytes) or not isinstance(config, dict):
            raise SpecError(
                f"a notebook run needs its notebook {spec.notebook!r} read first",
                value=spec.notebook,
                hint="launch it through the service (workbench notebook), which reads and checks it",
            )
        docs = build_notebook_manifests(
            workload_id, spec, notebook=notebook, config=config, owner=settings.owner, settings=kube
        )
        docs[-1]["metadata"].setdefault("annotations", {})[SPEC_ANNOTATION] = spec.model_dump_json()
        return docs
    if isinstance(spec, ServeSpec):
        code, entry = payload_parts(spec, payload)
        docs = build_serve_manifests(
            workload_id,
            spec,
            code=code,
            entry_name=entry,
            inputs=payload.inputs,
            owner=settings.owner,
            settings=kube,
        )
        main = next(doc for doc in docs if doc["kind"] in ("Deployment", "InferenceService"))
        main["metadata"]["annotations"][SPEC_ANNOTATION] = spec.model_dump_json(exclude={"code"})
        return docs
    if not isinstance(spec, (PodSpec, TrainSpec)):
        raise SpecError(
            f"the kubernetes backend cannot run {getattr(spec, 'kind', '?')!r} workloads yet",
            value=getattr(spec, "kind", None),
            hint="run a pod, dask, train, notebook or serve workload",
        )
    code, entry = payload_parts(spec, payload)
    build = build_train_manifests if isinstance(spec, TrainSpec) else build_pod_manifests
    docs = build(
        workload_id,
        spec,  # type: ignore[arg-type]  # each builder gets its own kind
        code=code,
        entry_name=entry,
        inputs=payload.inputs,
        owner=settings.owner,
        settings=kube,
    )
    job = docs[-1]
    job["metadata"].setdefault("annotations", {})[SPEC_ANNOTATION] = spec.model_dump_json(exclude={"code"})
    if payload.results_key:  # --get: the runner seals its results with the launch's key
        docs = with_results_key(docs, workload_id, payload.results_key)
    return docs
