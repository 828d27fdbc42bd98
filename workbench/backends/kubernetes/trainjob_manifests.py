"""A ``train`` workload as a Kubeflow Trainer v2 ``TrainJob``, as plain dicts (no I/O).

``--operator kubeflow`` on a cluster with Kubeflow Trainer v2 makes a
``trainer.kubeflow.org/v1alpha1`` TrainJob that names a ClusterTrainingRuntime
(``torch-distributed``, or ``--runtime NAME``). The runtime's JobSet makes one Indexed Job of
``nodes`` pods; its torch plugin gives the ``node`` container ``PET_NNODES``,
``PET_NPROC_PER_NODE``, ``PET_NODE_RANK``, ``PET_MASTER_ADDR`` and ``PET_MASTER_PORT``, which
torchrun reads: the command is the PyTorchJob's (torchrun around the cell runner, no rendezvous
flags).

The TrainJob is made from the same pod template as every other kind
(:func:`~.manifests.pod_template`): image, command, env, and requests and limits go in
``spec.trainer``; what the runtime's pod does not have (the security contexts of *restricted*,
the payload, run and writable volumes, ``/dev/shm``, ``--volume`` mounts, the node selector,
tolerations, the service account, pull secrets, the workload's labels) goes in one runtime patch
owned by :data:`PATCH_MANAGER` for the replicated job and container named ``node``. Three things a
patch cannot set are kept another way or left to the runtime:

- the API token: a patch cannot set ``automountServiceAccountToken``, so an empty read-only
  volume is mounted at the token's path (the API server never mounts a token over a container's
  own mount there);
- the working directory: the command is ``sh -c 'cd "$0" && exec "$@"' <outputs> torchrun …``;
- the image pull policy and ``enableServiceLinks`` are the runtime's.

``--priority-class`` has no place in a TrainJob and is refused. :func:`node_pod` is the pod the
runtime makes from a TrainJob, as far as the TrainJob decides it: the policy checks run on it.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from ...errors import SpecError
from ...spec import TrainSpec
from .hardening import image_pull_policy
from .manifests import queued_labels
from .settings import KubeSettings, object_name

__all__ = [
    "CLUSTER_RUNTIME_KIND",
    "DEFAULT_RUNTIME",
    "NODE",
    "PATCH_MANAGER",
    "TOKEN_PATH",
    "TRAINER_API_VERSION",
    "TRAINER_GROUP",
    "TRAINER_VERSION",
    "node_pod",
    "trainjob",
    "trainjob_pod_specs",
    "with_trainer_env",
]

TRAINER_GROUP = "trainer.kubeflow.org"
TRAINER_VERSION = "v1alpha1"
TRAINER_API_VERSION = f"{TRAINER_GROUP}/{TRAINER_VERSION}"
CLUSTER_RUNTIME_KIND = "ClusterTrainingRuntime"
#: Kubeflow Trainer's runtime for PyTorch (torchrun) jobs.
DEFAULT_RUNTIME = "torch-distributed"
#: The replicated job and the container of the trainer in every torch runtime.
NODE = "node"
#: Who owns the runtime patch (the Trainer wants a domain-prefixed path).
PATCH_MANAGER = "workbench.jupyter.org/manager"
#: Where the API server mounts a service-account token (never over a mount already there).
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"  # noqa: S105 - a path, not a secret
_NO_TOKEN = "no-api-token"  # noqa: S105 - a volume name
# the JobSet's headless Service is named after the TrainJob: an RFC 1035 label
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
#: keeps the working directory of the other kinds: ``$0`` is the directory, ``$@`` the command
_IN_OUTPUTS = ["/bin/sh", "-c", 'cd "$0" && exec "$@"']


def _check_names(name: str, spec: TrainSpec) -> None:
    if not _DNS_1035.match(name):
        raise SpecError(
            f"workload id {name!r} must start with a letter: it names the TrainJob's JobSet and its "
            "headless Service (an RFC 1035 label)",
            value=name,
            hint="use a --name such as 'train-1'",
        )
    # the JobSet's Job is <name>-node-0 and its pods' hostnames <name>-node-0-<index>
    object_name(f"{name}-{NODE}-0-{spec.nodes - 1}", what="pod hostname of the last node", limit=63)
    if spec.priority_class:
        raise SpecError(
            f"--priority-class {spec.priority_class} cannot be set on a Kubeflow Trainer TrainJob "
            "(its runtime patches do not carry it)",
            value=spec.priority_class,
            hint="set priorityClassName in the ClusterTrainingRuntime, or drop --operator kubeflow",
        )


def trainjob(
    name: str, spec: TrainSpec, labels: dict[str, str], template: Mapping[str, Any], settings: KubeSettings
) -> dict[str, Any]:
    """The TrainJob of a training job whose nodes would run ``template`` (a pod template of
    :func:`~.train_manifests._template` for an operator: torchrun without rendezvous flags).

    Raises:
        SpecError: a name Kubernetes would refuse, or ``--priority-class``.
    """
    _check_names(name, spec)
    pod = copy.deepcopy(dict(template["spec"]))
    container = pod["containers"][0]
    trainer: dict[str, Any] = {
        "image": container["image"],
        "command": [*_IN_OUTPUTS, container.get("workingDir", "/")],
        "args": list(container["command"]),
        "env": list(container.get("env") or []),
        "numNodes": spec.nodes,
        "numProcPerNode": spec.procs_per_node,
        "resourcesPerNode": container["resources"],
    }
    mounts = [
        *container.get("volumeMounts", []),
        {"name": _NO_TOKEN, "mountPath": TOKEN_PATH, "readOnly": True},
    ]
    patch: dict[str, Any] = {
        "containers": [
            {"name": NODE, "securityContext": container["securityContext"], "volumeMounts": mounts}
        ],
        "securityContext": pod["securityContext"],
        "volumes": [*pod.get("volumes", []), {"name": _NO_TOKEN, "emptyDir": {"sizeLimit": "1Mi"}}],
    }
    for field in ("imagePullSecrets", "nodeSelector", "tolerations", "serviceAccountName"):
        if field in pod:
            patch[field] = pod[field]
    pod_template = {"metadata": {"labels": dict(template["metadata"]["labels"])}, "spec": patch}
    replicated = {"name": NODE, "template": {"spec": {"template": pod_template}}}
    job_spec: dict[str, Any] = {
        "runtimeRef": {
            "name": spec.runtime or DEFAULT_RUNTIME,
            "kind": CLUSTER_RUNTIME_KIND,
            "apiGroup": TRAINER_GROUP,
        },
        "trainer": trainer,
        "runtimePatches": [
            {
                "manager": PATCH_MANAGER,
                "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [replicated]}}},
            }
        ],
    }
    if spec.timeout is not None:
        job_spec["activeDeadlineSeconds"] = max(1, math.ceil(spec.timeout))
    if spec.queue:
        job_spec["suspend"] = True  # Kueue admits it by unsuspending it
    return {
        "apiVersion": TRAINER_API_VERSION,
        "kind": "TrainJob",
        "metadata": {"name": name, "namespace": settings.namespace, "labels": queued_labels(labels, spec)},
        "spec": job_spec,
    }


def _pod_patches(doc: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The pod template patches of the ``node`` replicated job in a TrainJob's runtime patches."""
    for patch in (doc.get("spec") or {}).get("runtimePatches") or []:
        template = ((patch.get("trainingRuntimeSpec") or {}).get("template") or {}).get("spec") or {}
        for replicated in template.get("replicatedJobs") or []:
            if replicated.get("name") == NODE:
                pod = (((replicated.get("template") or {}).get("spec") or {}).get("template")) or {}
                if pod:
                    yield pod


def node_pod(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The pod template of the TrainJob's nodes, as far as the TrainJob decides it: its trainer
    block and its patches over an empty runtime pod (what the policy checks read).

    The pull policy is the runtime's: it is shown as the one the rules ask for, since a TrainJob
    cannot set it. ``automountServiceAccountToken`` is false when every container mounts over
    the token's path (the API server then mounts no token).
    """
    trainer = dict((doc.get("spec") or {}).get("trainer") or {})
    image = str(trainer.get("image", ""))
    container: dict[str, Any] = {
        "name": NODE,
        "image": image,
        "imagePullPolicy": image_pull_policy(image),
        "command": list(trainer.get("command") or []),
        "args": list(trainer.get("args") or []),
        "env": list(trainer.get("env") or []),
        "resources": dict(trainer.get("resourcesPerNode") or {}),
    }
    pod: dict[str, Any] = {"containers": [container]}
    labels: dict[str, str] = {}
    for patch in _pod_patches(doc):
        labels.update((patch.get("metadata") or {}).get("labels") or {})
        spec = patch.get("spec") or {}
        for key, value in spec.items():
            if key == "containers":
                for change in value:
                    target = next((c for c in pod["containers"] if c["name"] == change.get("name")), None)
                    if target is None:
                        target = {"name": change.get("name")}
                        pod["containers"].append(target)
                    target.update({k: copy.deepcopy(v) for k, v in change.items() if k != "name"})
            else:
                pod[key] = copy.deepcopy(value)
    if all(
        any(m.get("mountPath") == TOKEN_PATH for m in c.get("volumeMounts") or []) for c in pod["containers"]
    ):
        pod["automountServiceAccountToken"] = False
    return {"metadata": {"labels": labels}, "spec": pod}


def trainjob_pod_specs(doc: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(where, pod spec)`` of the pods a TrainJob makes, for the policy checks."""
    yield "spec.trainer and spec.runtimePatches (the node pods)", node_pod(doc)["spec"]


def with_trainer_env(docs: list[dict[str, Any]], values: Mapping[str, str]) -> list[dict[str, Any]]:
    """``docs`` with ``values`` in every TrainJob's trainer env (over entries of the same name),
    and no env in its runtime patches' containers: :func:`~.manifests.with_env` puts it in every
    pod spec's containers, but the Trainer takes the ``node`` container's env only from
    ``spec.trainer``."""
    for doc in docs:
        if doc.get("kind") != "TrainJob":
            continue
        for patch in _pod_patches(doc):
            for container in (patch.get("spec") or {}).get("containers") or []:
                container.pop("env", None)
        if values:
            trainer = doc["spec"]["trainer"]
            kept = [entry for entry in trainer.get("env", []) if entry.get("name") not in values]
            added = [{"name": name, "value": str(value)} for name, value in values.items()]
            trainer["env"] = sorted([*kept, *added], key=lambda entry: str(entry["name"]))
    return docs
