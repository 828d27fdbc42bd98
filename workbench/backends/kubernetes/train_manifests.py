"""The objects of a ``train`` workload (distributed PyTorch), as plain dicts.

Pure functions like :mod:`.manifests` (no I/O, no clock, no randomness, no ``kubernetes``
import), and the same pod template: Pod Security *restricted* and beyond, GPUs per node in limits,
tolerations, ``/dev/shm``, secrets by reference. By default a training job is three objects,
created in this order:

- ``<id>-payload``: the immutable payload ConfigMap of a ``pod`` workload (code, ``meta.json``,
  ``--send`` inputs);
- ``<id>``: a headless Service (``clusterIP: None``, ``publishNotReadyAddresses: true``) that
  gives every pod of the Job a DNS name ``<id>-<index>.<id>`` before it is ready;
- ``<id>``: a batch/v1 Indexed Job of ``nodes`` pods, all running at once. Each pod runs
  ``torchrun`` with its completion index as node rank; the nodes meet through c10d rendezvous
  on index 0 (``<id>-0.<id>:29400``), the contract the local backend keeps on 127.0.0.1.

``operator: kubeflow`` makes a Kubeflow Trainer v2 TrainJob (:mod:`.trainjob_manifests`) or,
with ``settings.kubeflow_api`` ``PyTorchJob`` (a cluster with only the v1 training operator), a
``kubeflow.org/v1`` PyTorchJob (a Master and ``nodes - 1`` Workers with the same pod template)
instead of the Service and the Job; the operator then sets torchrun's ``PET_*`` environment.
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any

from ...errors import SpecError
from ...spec import TrainSpec
from .locations import check_train_locations, runner_outputs
from .manifests import (
    IGNORE_DISRUPTION,
    RUN_DIR,
    batch_job,
    job_lifecycle,
    pod_template,
    queued_labels,
)
from .payload import code_payload
from .settings import ID_LABEL, OWNER_LABEL, KubeSettings, object_name, workload_labels
from .trainjob_manifests import trainjob

__all__ = [
    "KUBEFLOW_API_VERSION",
    "KUBEFLOW_CONTAINER",
    "KUBEFLOW_GROUP",
    "RDZV_PORT",
    "build_train_manifests",
    "torchrun_command",
]

#: The c10d rendezvous port on node 0 (torchrun's default).
RDZV_PORT = 29400
KUBEFLOW_GROUP = "kubeflow.org"
KUBEFLOW_API_VERSION = f"{KUBEFLOW_GROUP}/v1"
#: The training operator injects its environment only into a container of this name.
KUBEFLOW_CONTAINER = "pytorch"
INDEX_ENV = "JOB_COMPLETION_INDEX"
SHARED_STORE_ENV = "TORCH_DISABLE_SHARE_RDZV_TCP_STORE"
# Service names are RFC 1035 labels: they must start with a letter
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_RUNNER = ["-m", "workbench.runtime.cell", RUN_DIR, "--results-to-log"]


def torchrun_command(workload_id: str, spec: TrainSpec, *, service: str | None) -> list[str]:
    """The container command of every node: torchrun around the cell runner.

    With ``service`` (the Indexed Job) the node rank is the completion index and the
    rendezvous is on index 0 through the headless Service; without it (a PyTorchJob) the
    operator's ``PET_*`` variables say the same.
    """
    argv = ["python", "-m", "torch.distributed.run", f"--nproc-per-node={spec.procs_per_node}"]
    if spec.max_restarts:
        argv.append(f"--max-restarts={spec.max_restarts}")
    if service is not None:
        if spec.nodes == 1:
            argv.append("--standalone")
        else:
            argv += [
                f"--nnodes={spec.nodes}",
                f"--node-rank=$({INDEX_ENV})",
                "--rdzv-backend=c10d",
                f"--rdzv-endpoint={workload_id}-0.{service}:{RDZV_PORT}",
                f"--rdzv-id={workload_id}",
            ]
    return [*argv, *_RUNNER]


def _names(workload_id: str, spec: TrainSpec, *, pytorchjob: bool) -> str:
    """Check every name derived from the id; the Job's (and the Service's) name back."""
    job = object_name(workload_id, what="workload id", limit=63)
    if spec.operator == "job":
        # the Job controller names each pod's hostname <job>-<index>: a DNS label of at most 63
        object_name(f"{workload_id}-{spec.nodes - 1}", what="pod hostname of the last node", limit=63)
        if not _DNS_1035.match(workload_id):
            raise SpecError(
                f"workload id {workload_id!r} must start with a letter: it names the training "
                "job's headless Service (an RFC 1035 label)",
                value=workload_id,
                hint="use a --name such as 'train-1'",
            )
    elif pytorchjob:  # the v1 operator names the pods <job>-master-0 and <job>-worker-<i>
        object_name(f"{workload_id}-worker-{max(0, spec.nodes - 2)}", what="pod name of the last worker")
    return job


def _train_env(env: list[dict[str, Any]]) -> list[dict[str, Any]]:
    entries = {entry["name"]: entry for entry in env}
    # gloo connects its full mesh at the first collective, not at init: an eager connect races
    # peers that start later (another node's pod) or restart (elastic), as on the local backend
    entries.setdefault("TORCH_GLOO_LAZY_INIT", {"name": "TORCH_GLOO_LAZY_INIT", "value": "1"})
    entries.setdefault("OMP_NUM_THREADS", {"name": "OMP_NUM_THREADS", "value": "1"})
    # torchrun's agents otherwise share one TCP store, hosted by rendezvous rank 0 and its address
    # kept for good: a replaced node (evicted, preempted) could never join the others again
    entries.setdefault(SHARED_STORE_ENV, {"name": SHARED_STORE_ENV, "value": "1"})
    return [entries[name] for name in sorted(entries)]


def _template(
    workload_id: str,
    spec: TrainSpec,
    labels: dict[str, str],
    *,
    configmap: str,
    settings: KubeSettings,
    service: str | None,
) -> dict[str, Any]:
    template = pod_template(spec, workload_id, labels, configmap=configmap, settings=settings)
    pod = template["spec"]
    container = pod["containers"][0]
    container["command"] = torchrun_command(workload_id, spec, service=service)
    container["env"] = _train_env(container["env"])
    container["ports"] = [{"name": "c10d", "containerPort": RDZV_PORT, "protocol": "TCP"}]
    runner_outputs(container, workload_id, spec)
    # --max-restarts is torchrun's budget alone (it restarts the workers inside the pod): a pod
    # is never restarted in place, and only a disruption recreates it (the failure policy)
    pod["restartPolicy"] = "Never"
    if service is not None:
        pod["subdomain"] = service
    else:
        container["name"] = KUBEFLOW_CONTAINER
    return template


def _headless_service(name: str, workload_id: str, labels: dict[str, str], namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "clusterIP": "None",
            # the rendezvous host must resolve before its pod is ready (it never has a probe)
            "publishNotReadyAddresses": True,
            "selector": {ID_LABEL: workload_id},
            "ports": [{"name": "c10d", "port": RDZV_PORT, "targetPort": RDZV_PORT, "protocol": "TCP"}],
        },
    }


def _pod_failure_policy() -> dict[str, Any]:
    # an evicted or preempted node is recreated without counting; any other failure has used
    # up torchrun's restarts already (the runner's own exit codes never reach the pod: torchrun
    # exits 1), and with no backoff left it fails the job
    return {"rules": [IGNORE_DISRUPTION]}


def _indexed_job(
    name: str, spec: TrainSpec, labels: dict[str, str], template: dict[str, Any], settings: KubeSettings
) -> dict[str, Any]:
    job_spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": spec.nodes,
        "parallelism": spec.nodes,
    }
    # no pod-level retry: a node that fails has used up torchrun's --max-restarts, and the first
    # one fails the whole job at once (the other ranks cannot go on without it); a disruption
    # is retried by the failure policy without counting
    if settings.supports(1, 33):
        job_spec["backoffLimitPerIndex"] = 0
        job_spec["maxFailedIndexes"] = 0
    else:
        job_spec["backoffLimit"] = 0
    job_spec.update(job_lifecycle(spec, settings))
    if settings.supports(1, 26):
        job_spec["podFailurePolicy"] = _pod_failure_policy()
    job_spec["template"] = template
    return batch_job(name, labels, job_spec, spec, settings)


def _pytorch_job(
    name: str, spec: TrainSpec, labels: dict[str, str], template: dict[str, Any], settings: KubeSettings
) -> dict[str, Any]:
    restart = template["spec"]["restartPolicy"]
    replicas: dict[str, Any] = {
        "Master": {"replicas": 1, "restartPolicy": restart, "template": copy.deepcopy(template)}
    }
    if spec.nodes > 1:
        replicas["Worker"] = {
            "replicas": spec.nodes - 1,
            "restartPolicy": restart,
            "template": copy.deepcopy(template),
        }
    # the operator keeps every pod of a finished job by default: a node still running when
    # another failed (its ranks wait for the lost peer) would hold its GPUs and its log stream
    # open until a collective times out. The Indexed Job's controller ends them at once.
    # torchrun restarts the workers inside the pods (--max-restarts); the pods are not retried
    run_policy: dict[str, Any] = {"backoffLimit": 0, "cleanPodPolicy": "Running"}
    if settings.ttl_seconds_after_finished is not None:
        run_policy["ttlSecondsAfterFinished"] = settings.ttl_seconds_after_finished
    if spec.timeout is not None:
        run_policy["activeDeadlineSeconds"] = max(1, math.ceil(spec.timeout))
    if spec.queue:
        run_policy["suspend"] = True
    return {
        "apiVersion": KUBEFLOW_API_VERSION,
        "kind": "PyTorchJob",
        "metadata": {"name": name, "namespace": settings.namespace, "labels": queued_labels(labels, spec)},
        "spec": {
            "runPolicy": run_policy,
            "nprocPerNode": str(spec.procs_per_node),
            "pytorchReplicaSpecs": replicas,
        },
    }


def build_train_manifests(
    workload_id: str,
    spec: TrainSpec,
    *,
    code: str | bytes,
    entry_name: str,
    inputs: bytes | None,
    owner: str,
    settings: KubeSettings,
) -> list[dict[str, Any]]:
    """The objects of a ``train`` workload, in creation order.

    ``[payload ConfigMap, headless Service, Indexed Job]``, or with ``operator: kubeflow``
    ``[payload ConfigMap, TrainJob]`` (or ``PyTorchJob``). The arguments are those of
    :func:`~.manifests.build_pod_manifests`.

    Raises:
        SpecError: a name that Kubernetes would refuse (the last node's hostname must fit
            63), a payload too large for a ConfigMap, a spec that contradicts itself, a
            ``--checkpoint-dir`` or ``--output`` the pods cannot keep files in, or
            ``--max-restarts`` on several nodes without ``--checkpoint-dir``.
    """
    name = _names(workload_id, spec, pytorchjob=settings.kubeflow_api == "PyTorchJob")  # TrainJob: its own
    check_train_locations(spec)
    labels = workload_labels(workload_id, "train", owner, spec.labels)
    configmap = code_payload(
        workload_id, spec, code=code, entry_name=entry_name, inputs=inputs, labels=labels, settings=settings
    )
    configmap_name = configmap["metadata"]["name"]
    service = name if spec.operator == "job" else None
    template = _template(
        workload_id, spec, labels, configmap=configmap_name, settings=settings, service=service
    )
    if service is None:  # Kubeflow Trainer v2's TrainJob, or the v1 operator's PyTorchJob
        kubeflow = trainjob if settings.kubeflow_api == "TrainJob" else _pytorch_job
        job = kubeflow(name, spec, labels, template, settings)
        docs = [configmap, job]
    else:
        job = _indexed_job(name, spec, labels, template, settings)
        docs = [configmap, _headless_service(service, workload_id, labels, settings.namespace), job]
    if owner:  # the label is lossy (lower-cased, trimmed); keep who it was
        job["metadata"]["annotations"] = {OWNER_LABEL: owner}
    return docs
