"""Kubernetes manifests built from a validated spec, as plain dicts.

Pure functions: no I/O, no clock, no randomness and no import of the ``kubernetes`` client,
so the same input always gives identical dicts (``--dry-run`` prints them; the tests
validate them for every supported API version). Every pod template follows the object
rules of DESIGN.md: Pod Security *restricted*, GPUs in limits with equal requests, Kueue
suspend, secrets only by reference, quantities as strings, names length-checked.

A ``pod`` workload becomes two objects:

- ``<id>-payload``: an immutable ConfigMap with the code, ``meta.json`` and the cloudpickled
  ``--send`` inputs, mounted read-only at ``/workbench/run/payload``;
- ``<id>``: a batch/v1 Job of one pod that runs ``python -m workbench.runtime.cell
  /workbench/run``, the runner the local backend uses too. The run directory and its
  ``outputs/`` (the working directory) are emptyDirs: with ``--output`` the runner publishes
  ``outputs/`` there when the code ends (:mod:`.locations`).

Beyond *restricted* (:mod:`.hardening`): the root filesystem is read-only, with emptyDirs at
``/tmp`` and at ``HOME`` (``/home/workbench``); CPU and memory have requests and limits
(the settings' defaults when the spec gives none); no service-account token is mounted;
images by tag are pulled ``Always``, by digest ``IfNotPresent``.

``/dev/shm`` is a memory-backed emptyDir only when ``--shm`` is given or GPUs are asked
for (PyTorch data loaders need more than the runtime's 64Mi there). It is not added to
every pod because what is written there counts against the pod's memory limit.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ...errors import SpecError
from ...spec import CommonSpec, PodSpec, Resources, SecretRef, Volume
from ...units import parse_cpu
from .hardening import HOME_DIR, TMP_DIR, image_pull_policy, pod_specs, writable_dirs
from .locations import runner_outputs
from .payload import code_payload, payload_configmap
from .settings import (
    APP_NAME,
    ID_LABEL,
    KIND_LABEL,
    MANAGED_BY_LABEL,
    OWNER_LABEL,
    QUEUE_LABEL,
    KubeSettings,
    Toleration,
    object_name,
    owner_label,
    workload_labels,
)

__all__ = [
    "APP_NAME",
    "ID_LABEL",
    "IGNORE_DISRUPTION",
    "KIND_LABEL",
    "MANAGED_BY_LABEL",
    "OWNER_LABEL",
    "QUEUE_LABEL",
    "KubeSettings",
    "Toleration",
    "batch_job",
    "build_pod_manifests",
    "container_resources",
    "container_security_context",
    "job_lifecycle",
    "object_name",
    "owner_label",
    "payload_configmap",
    "pod_security_context",
    "pod_template",
    "queued_labels",
    "refuse_reserved_env",
    "service_account_fields",
    "with_env",
    "with_owner",
    "workload_labels",
]

RUN_DIR = "/workbench/run"
PAYLOAD_DIR = f"{RUN_DIR}/payload"
OUTPUT_DIR = f"{RUN_DIR}/outputs"
SHM_DIR = "/dev/shm"  # noqa: S108 - a mount path inside the pod, not a file on this machine
CONTAINER_NAME = "main"
#: Names the runtime owns; a spec may not set them in ``env``.
RUNTIME_ENV = ("WORKBENCH_WORKLOAD_ID", "WORKBENCH_RUN_DIR", "WORKBENCH_OUTPUT_DIR")
# workbench.runtime.cell exits 3 when a --get variable is missing or cannot be pickled:
# the same code fails the same way again, so retrying it only wastes the backoff budget.
_NO_RETRY_EXIT_CODES = (3,)
#: an evicted or preempted pod is recreated without using up a retry (a podFailurePolicy rule)
IGNORE_DISRUPTION: dict[str, Any] = {
    "action": "Ignore",
    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
}
# as in the local backend: numeric libraries otherwise start a thread per host core
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def pod_security_context(uid: int) -> dict[str, Any]:
    """Pod-level security context of Pod Security Standards *restricted*."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """Container-level security context of Pod Security Standards *restricted*."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }


def container_resources(resources: Resources, settings: KubeSettings) -> dict[str, Any]:
    """Requests and limits as strings, equal; CPU and memory always (the settings' defaults
    when not given), GPUs whole."""
    amounts = {
        "cpu": resources.cpu or settings.default_cpu,
        "memory": resources.memory or settings.default_memory,
    }
    if resources.gpus:
        amounts[settings.gpu_resource] = str(resources.gpus)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _env(spec: CommonSpec, workload_id: str, settings: KubeSettings) -> list[dict[str, Any]]:
    refuse_reserved_env(spec, RUNTIME_ENV, "workbench for every workload")
    # the root filesystem is read-only: HOME is an emptyDir, in any image
    values: dict[str, str] = {"PYTHONUNBUFFERED": "1", "HOME": HOME_DIR}
    threads = str(max(1, math.ceil(parse_cpu(spec.resources.cpu or settings.default_cpu))))
    values.update(dict.fromkeys(_THREAD_VARS, threads))
    values.update(spec.env)
    values.update(
        {
            "WORKBENCH_WORKLOAD_ID": workload_id,
            "WORKBENCH_RUN_DIR": RUN_DIR,
            "WORKBENCH_OUTPUT_DIR": OUTPUT_DIR,
        }
    )
    return env_entries(values, spec.secrets)


def refuse_reserved_env(spec: CommonSpec, names: Sequence[str], owner: str) -> None:
    """Refuse an ``--env`` that sets one of ``names`` (``owner`` sets them, e.g. "the Dask operator").

    Raises:
        SpecError: naming the first such variable.
    """
    for key in names:
        if key in spec.env:
            raise SpecError(f"--env {key} is set by {owner}", value=key, hint=f"drop {key} from --env")


def with_env(docs: list[dict[str, Any]], values: Mapping[str, str]) -> list[dict[str, Any]]:
    """``docs`` with ``values`` in the env of every container of every pod (template) in them,
    over any entry of the same name (what the launcher adds: a tracked run's ``MLFLOW_*``)."""
    if not values:
        return docs
    for _, pod in pod_specs(docs):
        for container in pod["containers"]:
            kept = [entry for entry in container.get("env", []) if entry.get("name") not in values]
            added = [{"name": name, "value": str(value)} for name, value in values.items()]
            container["env"] = sorted([*kept, *added], key=lambda entry: str(entry["name"]))
    return docs


def env_entries(values: Mapping[str, str], secrets: Sequence[SecretRef]) -> list[dict[str, Any]]:
    """A container's env, sorted: literal values, and secrets by reference only.

    Raises:
        SpecError: a variable given twice.
    """
    entries: dict[str, dict[str, Any]] = {
        name: {"name": name, "value": value} for name, value in values.items()
    }
    for ref in secrets:
        if ref.env in entries:
            raise SpecError(
                f"environment variable {ref.env} is given twice (by --secret and by --env or --secret)",
                value=ref.env,
                hint="give each variable once",
            )
        entries[ref.env] = {
            "name": ref.env,
            "valueFrom": {"secretKeyRef": {"name": ref.secret, "key": ref.key}},
        }
    return [entries[name] for name in sorted(entries)]


def _volume_source(volume: Volume) -> dict[str, Any]:
    if volume.type == "pvc":
        return {"persistentVolumeClaim": {"claimName": volume.source, "readOnly": volume.read_only}}
    if volume.type == "configmap":
        return {"configMap": {"name": volume.source}}
    if volume.type == "secret":
        return {"secret": {"secretName": volume.source}}
    return {"emptyDir": {}}


def add_user_volumes(
    spec: CommonSpec,
    volumes: list[dict[str, Any]],
    mounts: list[dict[str, Any]],
    *,
    reserved: tuple[str, ...],
    writable: tuple[str, ...] = (TMP_DIR, HOME_DIR),
) -> None:
    """Append /dev/shm (with GPUs or --shm) and the spec's --volume mounts.

    Raises:
        SpecError: a mount path given twice, on, below or above one of ``reserved`` (hiding
            it would break the runner), or on or above one of ``writable`` (the writable
            places of the read-only root; a volume below them is fine).
    """
    shm = spec.resources.shm
    if shm or spec.resources.gpus:
        volumes.append(
            {"name": "shm", "emptyDir": {"medium": "Memory", **({"sizeLimit": shm} if shm else {})}}
        )
        mounts.append({"name": "shm", "mountPath": SHM_DIR})
    taken: set[str] = set()
    for index, volume in enumerate(spec.volumes):
        path = volume.mount_path.rstrip("/") or "/"
        above = [
            ours for ours in (*reserved, *writable) if path == ours or ours.startswith(f"{path.rstrip('/')}/")
        ]
        clash = bool(above) or any(path.startswith(f"{ours}/") for ours in reserved)
        if clash or path in taken:
            why = (
                f"(it overlaps {' or '.join(above or reserved)}, which workbench mounts)"
                if clash
                else "twice"
            )
            raise SpecError(
                f"--volume mount path {volume.mount_path!r} is taken {why}",
                value=volume.mount_path,
                hint="mount it somewhere else, e.g. /data",
            )
        taken.add(path)
        name = f"volume-{index}"
        volumes.append({"name": name, **_volume_source(volume)})
        mounts.append({"name": name, "mountPath": path, "readOnly": volume.read_only})


def _volumes(spec: CommonSpec, configmap: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = [
        {"name": "run", "emptyDir": {}},
        {"name": "payload", "configMap": {"name": configmap}},
        {"name": "outputs", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "run", "mountPath": RUN_DIR},
        {"name": "payload", "mountPath": PAYLOAD_DIR, "readOnly": True},
        {"name": "outputs", "mountPath": OUTPUT_DIR},
    ]
    writable, writable_mounts = writable_dirs()
    volumes += writable
    mounts += writable_mounts
    add_user_volumes(spec, volumes, mounts, reserved=(RUN_DIR, SHM_DIR))
    return volumes, mounts


def _node_selector(
    resources: Resources, selector: Mapping[str, str], settings: KubeSettings
) -> dict[str, str]:
    merged = dict(selector)
    if resources.gpu_type:
        chosen = merged.get(settings.gpu_node_label, resources.gpu_type)
        if chosen != resources.gpu_type:
            raise SpecError(
                f"--gpu-type {resources.gpu_type!r} contradicts --node-selector "
                f"{settings.gpu_node_label}={chosen}",
                value=chosen,
                hint="give the GPU type once, with --gpu-type",
            )
        merged[settings.gpu_node_label] = resources.gpu_type
    return {key: merged[key] for key in sorted(merged)}


def pod_template(
    spec: CommonSpec, workload_id: str, labels: Mapping[str, str], *, configmap: str, settings: KubeSettings
) -> dict[str, Any]:
    """The Job's pod template: the runtime container, its volumes and the scheduling rules."""
    volumes, mounts = _volumes(spec, configmap)
    image = spec.image or settings.image
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": image_pull_policy(image),
        # --get results travel in the log: the pod's disk goes away with it
        "command": ["python", "-m", "workbench.runtime.cell", RUN_DIR, "--results-to-log"],
        "workingDir": OUTPUT_DIR,
        "env": _env(spec, workload_id, settings),
        "securityContext": container_security_context(),
        "resources": container_resources(spec.resources, settings),
        "volumeMounts": mounts,
    }
    pod: dict[str, Any] = {"restartPolicy": "Never", "enableServiceLinks": False}
    pod.update(service_account_fields(settings))
    if settings.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": name} for name in settings.image_pull_secrets]
    if spec.priority_class:
        pod["priorityClassName"] = spec.priority_class
    selector = _node_selector(spec.resources, spec.node_selector, settings)
    if selector:
        pod["nodeSelector"] = selector
    if spec.resources.gpus and settings.gpu_tolerations:
        pod["tolerations"] = [toleration.to_dict() for toleration in settings.gpu_tolerations]
    pod["securityContext"] = pod_security_context(settings.runtime_uid)
    pod["containers"] = [container]
    pod["volumes"] = volumes
    return {"metadata": {"labels": dict(labels)}, "spec": pod}


def service_account_fields(settings: KubeSettings) -> dict[str, Any]:
    """No workload kind talks to the API: its token is never mounted, whatever the account."""
    fields: dict[str, Any] = {"automountServiceAccountToken": False}
    if settings.service_account is not None:
        fields["serviceAccountName"] = settings.service_account
    return fields


def _pod_failure_policy() -> dict[str, Any]:
    return {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER_NAME,
                    "operator": "In",
                    "values": list(_NO_RETRY_EXIT_CODES),
                },
            },
            IGNORE_DISRUPTION,
        ]
    }


def job_lifecycle(spec: CommonSpec, settings: KubeSettings) -> dict[str, Any]:
    """The Job fields every kind shares: the TTL after it finishes, ``--timeout`` as its
    deadline, and ``suspend`` for Kueue to admit it (``--queue``)."""
    fields: dict[str, Any] = {}
    if settings.ttl_seconds_after_finished is not None:
        fields["ttlSecondsAfterFinished"] = settings.ttl_seconds_after_finished
    if spec.timeout is not None:
        fields["activeDeadlineSeconds"] = max(1, math.ceil(spec.timeout))
    if spec.queue:
        fields["suspend"] = True  # Kueue admits the Job by unsuspending it
    return fields


def batch_job(
    name: str, labels: Mapping[str, str], job_spec: dict[str, Any], spec: CommonSpec, settings: KubeSettings
) -> dict[str, Any]:
    """A batch/v1 Job named ``name``; with ``--queue`` its labels name the Kueue queue."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": settings.namespace, "labels": queued_labels(labels, spec)},
        "spec": job_spec,
    }


def queued_labels(labels: Mapping[str, str], spec: CommonSpec) -> dict[str, str]:
    """``labels``, plus Kueue's queue label with ``--queue``."""
    result = dict(labels)
    if spec.queue:
        result[QUEUE_LABEL] = spec.queue
    return result


def build_pod_manifests(
    workload_id: str,
    spec: PodSpec,
    *,
    code: str | bytes,
    entry_name: str,
    inputs: bytes | None,
    owner: str,
    settings: KubeSettings,
) -> list[dict[str, Any]]:
    """The objects of a ``pod`` workload, in creation order: [payload ConfigMap, Job].

    Args:
        workload_id: the workload's id; the Job's name.
        spec: the validated spec.
        code: the cell body or the script's content.
        entry_name: the file name the code gets in the payload (``cell.py``, ``train.py``).
        inputs: the cloudpickled ``--send`` variables, if any.
        owner: who launched it (sanitized into a label value).
        settings: the cluster settings.

    Raises:
        SpecError: a name that Kubernetes would refuse, a payload too large for a
            ConfigMap, or a spec that contradicts itself (a mount path or variable twice).
    """
    # the Job controller copies the Job's name into a pod label, so it must fit 63
    job_name = object_name(workload_id, what="workload id", limit=63)
    labels = workload_labels(workload_id, "pod", owner, spec.labels)
    configmap = code_payload(
        workload_id, spec, code=code, entry_name=entry_name, inputs=inputs, labels=labels, settings=settings
    )
    configmap_name = configmap["metadata"]["name"]
    job_spec: dict[str, Any] = {"completions": 1, "parallelism": 1, "backoffLimit": spec.retries}
    job_spec.update(job_lifecycle(spec, settings))
    if settings.supports(1, 26):
        job_spec["podFailurePolicy"] = _pod_failure_policy()
    job_spec["template"] = pod_template(
        spec, workload_id, labels, configmap=configmap_name, settings=settings
    )
    runner_outputs(job_spec["template"]["spec"]["containers"][0], workload_id, spec)
    job = batch_job(job_name, labels, job_spec, spec, settings)
    if owner:  # the label is lossy (lower-cased, trimmed); keep who it was
        job["metadata"]["annotations"] = {OWNER_LABEL: owner}
    return [configmap, job]


def with_owner(doc: Mapping[str, Any], owner: Mapping[str, Any], uid: str) -> dict[str, Any]:
    """A copy of ``doc`` owned by the created object ``owner`` (its ``uid`` from the server).

    The client creates the Job first and then the ConfigMap owned by it, so that deleting
    the Job (or its TTL running out) garbage-collects the payload too.
    """
    owned = copy.deepcopy(dict(doc))
    owned["metadata"]["ownerReferences"] = [
        {
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "name": owner["metadata"]["name"],
            "uid": uid,
        }
    ]
    return owned
