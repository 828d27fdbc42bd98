"""The Dask operator's custom resources for a ``dask`` workload, as plain dicts.

Pure functions like :mod:`.manifests` (no I/O, no clock, no randomness, no ``kubernetes``
import). A Dask cluster on Kubernetes is one ``kubernetes.dask.org/v1`` DaskCluster, which
the dask-kubernetes operator turns into a scheduler Deployment, the scheduler Service
``<name>-scheduler``, the default DaskWorkerGroup ``<name>-default`` and one Deployment per
worker; with ``--adapt`` a DaskAutoscaler ``<name>`` next to it. The shapes follow the
operator's own ``make_cluster_spec``: ``dask scheduler`` on port 8786 with its dashboard on
8787, ``dask worker --name $(DASK_WORKER_NAME)`` whose scheduler address the operator puts in
``DASK_SCHEDULER_ADDRESS``. Every pod template follows the object rules of DESIGN.md
(restricted Pod Security and beyond: read-only root filesystem with ``/tmp`` and ``HOME``
as emptyDirs, requests and limits, no service-account token; GPUs in limits, tolerations,
``/dev/shm``, secrets by reference).

The operator copies the DaskCluster's labels to everything it creates, pods included, so
the workbench label selector finds a cluster's pods as it finds a Job's. Resources apply per
worker; the scheduler gets the settings' default CPU and memory. ``--idle-timeout`` is the
DaskCluster's ``idleTimeout``: the operator deletes the whole cluster once the scheduler has
been idle that long (a scheduler that exited on its own would only be restarted by its
Deployment).
"""

from __future__ import annotations

import math
from typing import Any

from ...errors import SpecError
from ...spec import DaskSpec, Resources
from ...units import parse_bytes
from .hardening import HOME_DIR, image_pull_policy, writable_dirs
from .manifests import (
    SHM_DIR,
    _node_selector,
    add_user_volumes,
    container_resources,
    container_security_context,
    env_entries,
    pod_security_context,
    refuse_reserved_env,
    service_account_fields,
)
from .settings import OWNER_LABEL, KubeSettings, object_name, workload_labels

__all__ = [
    "DASHBOARD_PORT",
    "DASK_API_VERSION",
    "DASK_GROUP",
    "OPERATOR_ENV",
    "SCHEDULER_PORT",
    "autoscaler_manifest",
    "build_dask_manifests",
    "scheduler_service_name",
    "worker_group_name",
]

DASK_GROUP = "kubernetes.dask.org"
DASK_API_VERSION = f"{DASK_GROUP}/v1"
SCHEDULER_PORT = 8786
DASHBOARD_PORT = 8787
WORKER_DASHBOARD_PORT = 8788
SCRATCH_DIR = "/workbench/scratch"
#: Set by the operator on every worker; a spec may not set them in ``env``.
OPERATOR_ENV = ("DASK_SCHEDULER_ADDRESS", "DASK_WORKER_NAME")
# the operator names the worker Deployments "<name>-default-worker-<10 hex>"; the scheduler
# Service "<name>-scheduler" is the longest name that must be an RFC 1035 label (≤ 63)
_SCHEDULER_SUFFIX = "-scheduler"


def scheduler_service_name(cluster: str) -> str:
    """The scheduler Service the operator creates for ``cluster``."""
    return f"{cluster}{_SCHEDULER_SUFFIX}"


def worker_group_name(cluster: str) -> str:
    """The default DaskWorkerGroup the operator creates for ``cluster``."""
    return f"{cluster}-default"


def _cluster_name(workload_id: str) -> str:
    limit = 63 - len(_SCHEDULER_SUFFIX)
    if len(workload_id) > limit:
        raise SpecError(
            f"Dask cluster name {workload_id!r} is {len(workload_id)} characters; at most {limit} leave "
            f"room for its scheduler Service {scheduler_service_name('…')!r} (63)",
            value=workload_id,
            hint=f"shorten --name to at most {limit} characters",
        )
    name = object_name(workload_id, what="Dask cluster name", limit=63)
    if not name[0].isalpha():
        raise SpecError(
            f"Dask cluster name {name!r} must start with a letter (its scheduler Service "
            f"{scheduler_service_name(name)!r} is a DNS-1035 label)",
            value=name,
            hint="use a name such as 'dask-1'",
        )
    return name


def _check(spec: DaskSpec) -> None:
    if spec.queue:
        raise SpecError(
            f"--queue {spec.queue!r}: Kueue does not admit DaskClusters",
            value=spec.queue,
            hint="drop --queue for Dask clusters (it applies to pod, train and notebook workloads)",
        )
    if spec.timeout is not None:
        raise SpecError(
            "--timeout does not apply to Dask clusters on Kubernetes",
            value=spec.timeout,
            hint="use --idle-timeout: the operator deletes a cluster idle that long",
        )
    refuse_reserved_env(spec, OPERATOR_ENV, "the Dask operator for every worker")


def _env(spec: DaskSpec, *, with_secrets: bool) -> list[dict[str, Any]]:
    # the root filesystem is read-only: HOME is an emptyDir, in any image
    values = {"PYTHONUNBUFFERED": "1", "HOME": HOME_DIR, **spec.env}
    return env_entries(values, spec.secrets if with_secrets else ())


def _volumes(spec: DaskSpec, *, worker: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes, mounts = writable_dirs()
    volumes.insert(0, {"name": "scratch", "emptyDir": {}})
    mounts.insert(0, {"name": "scratch", "mountPath": SCRATCH_DIR})
    if not worker:
        return volumes, mounts
    add_user_volumes(spec, volumes, mounts, reserved=(SCRATCH_DIR, SHM_DIR))
    return volumes, mounts


def _pod_spec(
    spec: DaskSpec, container: dict[str, Any], settings: KubeSettings, *, worker: bool
) -> dict[str, Any]:
    volumes, mounts = _volumes(spec, worker=worker)
    image = spec.image or settings.image
    container = {
        **container,
        "image": image,
        "imagePullPolicy": image_pull_policy(image),
        "env": _env(spec, with_secrets=worker),
        "securityContext": container_security_context(),
        "resources": container_resources(spec.resources if worker else Resources(), settings),
        "volumeMounts": mounts,
    }
    pod: dict[str, Any] = {"enableServiceLinks": False}
    pod.update(service_account_fields(settings))
    if settings.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": name} for name in settings.image_pull_secrets]
    if spec.priority_class:
        pod["priorityClassName"] = spec.priority_class
    resources_for_selector = (
        spec.resources if worker else spec.resources.model_copy(update={"gpu_type": None})
    )
    selector = _node_selector(resources_for_selector, spec.node_selector, settings)
    if selector:
        pod["nodeSelector"] = selector
    if worker and spec.resources.gpus and settings.gpu_tolerations:
        pod["tolerations"] = [toleration.to_dict() for toleration in settings.gpu_tolerations]
    pod["securityContext"] = pod_security_context(settings.runtime_uid)
    pod["containers"] = [container]
    pod["volumes"] = volumes
    return pod


def _scheduler(spec: DaskSpec, name: str, labels: dict[str, str], settings: KubeSettings) -> dict[str, Any]:
    probe = {"httpGet": {"port": "http-dashboard", "path": "/health"}}
    container = {
        "name": "scheduler",
        "args": [
            "dask",
            "scheduler",
            "--host",
            "0.0.0.0",  # noqa: S104 - inside the pod: the Service reaches it on the pod's IP
            "--port",
            str(SCHEDULER_PORT),
            "--dashboard-address",
            f":{DASHBOARD_PORT}",
        ],
        "ports": [
            {"name": "tcp-comm", "containerPort": SCHEDULER_PORT, "protocol": "TCP"},
            {"name": "http-dashboard", "containerPort": DASHBOARD_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {**probe, "initialDelaySeconds": 0, "periodSeconds": 1, "timeoutSeconds": 300},
        "livenessProbe": {**probe, "initialDelaySeconds": 15, "periodSeconds": 20},
    }
    service = {
        "type": "ClusterIP",
        "selector": {"dask.org/cluster-name": name, "dask.org/component": "scheduler"},
        "ports": [
            {"name": "tcp-comm", "protocol": "TCP", "port": SCHEDULER_PORT, "targetPort": "tcp-comm"},
            {
                "name": "http-dashboard",
                "protocol": "TCP",
                "port": DASHBOARD_PORT,
                "targetPort": "http-dashboard",
            },
        ],
    }
    return {
        "metadata": {"labels": dict(labels)},
        "spec": _pod_spec(spec, container, settings, worker=False),
        "service": service,
    }


def _worker(spec: DaskSpec, replicas: int, labels: dict[str, str], settings: KubeSettings) -> dict[str, Any]:
    memory = str(parse_bytes(spec.resources.memory)) if spec.resources.memory else "auto"
    probe = {"httpGet": {"port": "http-dashboard", "path": "/health"}}
    container = {
        "name": "worker",
        "args": [
            "dask",
            "worker",
            "--name",
            "$(DASK_WORKER_NAME)",
            "--nthreads",
            str(spec.threads),
            "--memory-limit",
            memory,
            "--dashboard",
            "--dashboard-address",
            f":{WORKER_DASHBOARD_PORT}",
            "--local-directory",
            SCRATCH_DIR,
        ],
        "ports": [{"name": "http-dashboard", "containerPort": WORKER_DASHBOARD_PORT, "protocol": "TCP"}],
        # the worker's event loop answers /health while tasks run in other threads; a task
        # that holds the GIL for long may delay it, so a restart needs five minutes of silence
        "readinessProbe": {**probe, "periodSeconds": 5, "timeoutSeconds": 10},
        "livenessProbe": {
            **probe,
            "initialDelaySeconds": 15,
            "periodSeconds": 30,
            "timeoutSeconds": 10,
            "failureThreshold": 10,
        },
    }
    return {
        "replicas": replicas,
        "metadata": {"labels": dict(labels)},
        "spec": _pod_spec(spec, container, settings, worker=True),
    }


def autoscaler_manifest(
    workload_id: str, minimum: int, maximum: int, *, labels: dict[str, str], namespace: str
) -> dict[str, Any]:
    """The DaskAutoscaler that keeps the cluster's default worker group within [minimum, maximum]."""
    return {
        "apiVersion": DASK_API_VERSION,
        "kind": "DaskAutoscaler",
        "metadata": {"name": workload_id, "namespace": namespace, "labels": dict(labels)},
        "spec": {"cluster": workload_id, "minimum": minimum, "maximum": maximum},
    }


def build_dask_manifests(
    workload_id: str, spec: DaskSpec, *, owner: str, settings: KubeSettings
) -> list[dict[str, Any]]:
    """The objects of a ``dask`` workload, in creation order: [DaskCluster] or [DaskCluster, DaskAutoscaler].

    Raises:
        SpecError: a name the operator's objects could not carry, an option that does not
            apply to Dask clusters on Kubernetes (``--queue``, ``--timeout``), a variable the
            operator sets, or a spec that contradicts itself.
    """
    name = _cluster_name(workload_id)
    _check(spec)
    labels = workload_labels(workload_id, "dask", owner, spec.labels)
    replicas = spec.workers
    if spec.adapt is not None:
        replicas = min(max(replicas, spec.adapt.minimum), spec.adapt.maximum)
    idle = 0 if not spec.idle_timeout else max(1, math.ceil(spec.idle_timeout))
    cluster: dict[str, Any] = {
        "apiVersion": DASK_API_VERSION,
        "kind": "DaskCluster",
        "metadata": {"name": name, "namespace": settings.namespace, "labels": dict(labels)},
        "spec": {
            "idleTimeout": idle,
            "worker": _worker(spec, replicas, labels, settings),
            "scheduler": _scheduler(spec, name, labels, settings),
        },
    }
    if owner:  # the label is lossy (lower-cased, trimmed); keep who it was
        cluster["metadata"]["annotations"] = {OWNER_LABEL: owner}
    docs = [cluster]
    if spec.adapt is not None:
        docs.append(
            autoscaler_manifest(
                name, spec.adapt.minimum, spec.adapt.maximum, labels=labels, namespace=settings.namespace
            )
        )
    return docs
