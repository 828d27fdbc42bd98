"""Every Kubernetes object of a workload, from its spec and payload (no I/O).

The one entry point ``--dry-run``, ``workbench export`` and the backend's submit share: it
dispatches to the builder of the spec's kind and records the spec on the main object, so
that a workload launched elsewhere can be found again (``discover``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...config import Settings
from ...errors import SpecError
from ...spec import CodeSpec, CommonSpec, DaskSpec, NotebookSpec, PodSpec, TrainSpec
from ..base import Payload
from .dask_manifests import build_dask_manifests
from .manifests import build_pod_manifests
from .notebook_manifests import build_notebook_manifests
from .settings import KubeSettings, Toleration
from .train_manifests import build_train_manifests

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
    )


def payload_parts(spec: CodeSpec, payload: Payload) -> tuple[str | bytes, str]:
    """The code and the file name it gets in the payload."""
    if payload.code is not None:
        return payload.code, "cell.py"
    return payload.script or b"", Path(payload.script_name or "script.py").name


def build_manifests(
    workload_id: str, spec: CommonSpec, payload: Payload, settings: Settings, kube: KubeSettings
) -> list[dict[str, Any]]:
    """Every object of a workload, validated; raises SpecError before anything exists."""
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
    if not isinstance(spec, (PodSpec, TrainSpec)):
        raise SpecError(
            f"the kubernetes backend cannot run {getattr(spec, 'kind', '?')!r} workloads yet",
            value=getattr(spec, "kind", None),
            hint="run a pod, dask, train or notebook workload",
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
    return docs
