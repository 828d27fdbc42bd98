"""Cluster settings and the metadata rules every Kubernetes object of a workload follows.

:class:`KubeSettings` is what the manifest builders need to know about the cluster (the
client fills ``server_version`` from discovery). :func:`object_name` and
:func:`workload_labels` are the one place where names are length-checked and labels made,
so every kind's objects are found by the same label selector. No I/O, no ``kubernetes``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from ...config import DEFAULT_IMAGE
from ...errors import SpecError
from ...units import DNS_LABEL, DNS_SUBDOMAIN, check_label, parse_bytes, parse_cpu

APP_NAME = "jupyter-ml-workbench"
LABEL_DOMAIN = "workbench.jupyter.org"
ID_LABEL = f"{LABEL_DOMAIN}/id"
KIND_LABEL = f"{LABEL_DOMAIN}/kind"
OWNER_LABEL = f"{LABEL_DOMAIN}/owner"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
_RESERVED_LABELS = frozenset(
    {"app.kubernetes.io/name", MANAGED_BY_LABEL, "app.kubernetes.io/component", QUEUE_LABEL}
)
#: The API server refuses a ConfigMap whose data and binaryData add up to more than this.
CONFIGMAP_HARD_LIMIT = 1024 * 1024
#: Everything the backend does in the workloads' namespace: the Role `workbench rbac` prints.
NAMESPACED_PERMISSIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # a serve revision's ConfigMap is read back (get) to change it; unused ones are listed and removed
    ("", "configmaps", ("create", "delete", "get", "list", "patch")),
    # the per-launch key that seals --get results (created, owned by the Job, deleted)
    ("", "secrets", ("create", "delete", "patch")),
    ("", "pods", ("list", "watch")),
    ("", "pods/log", ("get",)),
    ("", "services", ("create", "delete", "get", "patch")),
    ("batch", "jobs", ("create", "delete", "list", "watch")),
    # one per workload, admitting only its own pods (and a Dask scheduler's clients)
    ("networking.k8s.io", "networkpolicies", ("create", "delete", "patch")),
    # scheduled notebook runs
    ("batch", "cronjobs", ("create", "delete", "list", "patch", "watch")),  # patch: pause/resume
    # train workloads with --operator kubeflow: Kubeflow Trainer v2's TrainJobs (listed and
    # watched by label), or the v1 training operator's PyTorchJobs
    ("trainer.kubeflow.org", "trainjobs", ("create", "delete", "list", "watch")),
    ("kubeflow.org", "pytorchjobs", ("create", "delete", "get")),
    # dask workloads: the dask-kubernetes operator's resources
    ("kubernetes.dask.org", "daskautoscalers", ("create", "delete", "patch")),
    ("kubernetes.dask.org", "daskclusters", ("create", "delete", "list", "patch", "watch")),
    ("kubernetes.dask.org", "daskworkergroups", ("patch",)),
    # serve workloads: Deployments (rollouts, undo from their ReplicaSets), autoscaling, disruption
    # budgets, and requests to the endpoint through the API server (GET health, POST infer)
    ("apps", "deployments", ("create", "delete", "list", "patch", "watch")),
    ("apps", "replicasets", ("list", "watch")),
    ("autoscaling", "horizontalpodautoscalers", ("create", "delete", "patch")),
    ("policy", "poddisruptionbudgets", ("create", "delete")),
    ("", "services/proxy", ("create", "get")),
    # serve workloads with --operator kserve: KServe's InferenceServices
    ("serving.kserve.io", "inferenceservices", ("create", "delete", "list", "patch", "watch")),
    # what the pods use (workbench top, describe): their PodMetrics, listed by label selector
    ("metrics.k8s.io", "pods", ("list",)),
)
#: Optional, cluster-wide: reading node capacity for the preflight check and `workbench doctor`.
CLUSTER_PERMISSIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("", "nodes", ("list",)),
    ("apiextensions.k8s.io", "customresourcedefinitions", ("get",)),
    # the Kubeflow Trainer runtime a TrainJob names is checked before it is created (and listed
    # when it is missing); without this rule the check is skipped
    ("trainer.kubeflow.org", "clustertrainingruntimes", ("get", "list")),
)

_SETTINGS_HINT = "fix the Kubernetes settings in the workbench config"


def _settings_check(check: Callable[[], object], what: str) -> None:
    try:
        check()
    except ValueError as exc:
        raise SpecError(f"invalid {what}: {exc}", hint=_SETTINGS_HINT) from None


@dataclass(frozen=True)
class Toleration:
    """A toleration added to pods that ask for GPUs (GPU nodes are usually tainted)."""

    key: str
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = "NoSchedule"

    def __post_init__(self) -> None:
        _settings_check(lambda: check_label(self.key, self.value or ""), "gpu_tolerations")
        if self.operator == "Exists" and self.value is not None:
            raise SpecError(
                f"toleration {self.key!r} has operator Exists and a value {self.value!r}",
                value=self.value,
                hint="drop the value or use operator Equal",
            )

    def to_dict(self) -> dict[str, str]:
        """The toleration as it appears in a pod spec."""
        out = {"key": self.key, "operator": self.operator}
        if self.value is not None:
            out["value"] = self.value
        if self.effect is not None:
            out["effect"] = self.effect
        return out


@dataclass(frozen=True)
class KubeSettings:
    """What the manifests need to know about the cluster; the client fills ``server_version``.

    Attributes:
        namespace: where the objects are created.
        image: container image when the spec names none (it must contain workbench).
        gpu_resource: the extended resource GPUs are counted in, e.g. a MIG resource
            ``nvidia.com/mig-1g.10gb``.
        gpu_node_label: node label that ``--gpu-type`` selects on.
        gpu_tolerations: added only to pods that ask for GPUs.
        service_account: the pods' service account; without one no API token is mounted.
        image_pull_secrets: names of registry secrets.
        ttl_seconds_after_finished: how long a finished Job stays; ``None`` keeps it.
        server_version: the API server's (major, minor); newer fields are gated on it.
        max_configmap_bytes: the largest payload (code and inputs) sent as a ConfigMap.
        runtime_uid: the non-root user and group the pods run as (the images' 10001); the
            policy checks refuse one below 10000 (it could clash with a user of the node).
        default_cpu: the CPU request and limit of a container whose spec gives no ``--cpu``
            (every container gets both, so no pod is unbounded or BestEffort).
        default_memory: likewise for memory when no ``--memory`` is given.
        client_labels: the labels of the pods (in the workloads' namespace) that may reach a
            Dask scheduler through its NetworkPolicy: label the notebook and Jupyter pods so.
        dask_operator_namespace: where the Dask operator runs; its pods may reach the
            schedulers too (it checks idleness and adaptive targets). ``None``: nobody else.
        kubeflow_api: what ``--operator kubeflow`` makes: a Kubeflow Trainer v2 ``TrainJob``
            or, where the cluster has only the v1 training operator, a ``PyTorchJob`` (the
            backend discovers which; offline, ``--dry-run`` prints a TrainJob).
    """

    namespace: str = "default"
    image: str = DEFAULT_IMAGE
    gpu_resource: str = "nvidia.com/gpu"
    gpu_node_label: str = "nvidia.com/gpu.product"
    gpu_tolerations: tuple[Toleration, ...] = (Toleration("nvidia.com/gpu"),)
    service_account: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    ttl_seconds_after_finished: int | None = 86400
    server_version: tuple[int, int] = (1, 29)
    max_configmap_bytes: int = 1_000_000
    runtime_uid: int = 10001
    default_cpu: str = "500m"
    default_memory: str = "1Gi"
    client_labels: tuple[tuple[str, str], ...] = ((f"{LABEL_DOMAIN}/client", "true"),)
    dask_operator_namespace: str | None = "dask-operator"
    kubeflow_api: Literal["TrainJob", "PyTorchJob"] = "TrainJob"

    def __post_init__(self) -> None:
        object_name(self.namespace, what="namespace", limit=63)
        for secret in self.image_pull_secrets:
            object_name(secret, what="image pull secret", limit=253)
        if self.service_account is not None:
            object_name(self.service_account, what="service account", limit=253)
        if self.dask_operator_namespace is not None:
            object_name(self.dask_operator_namespace, what="dask_operator_namespace", limit=63)
        for label, text in self.client_labels:
            _settings_check(functools.partial(check_label, label, text), "client_labels")
        _settings_check(lambda: parse_cpu(self.default_cpu), "default_cpu")
        _settings_check(lambda: parse_bytes(self.default_memory), "default_memory")
        # an extended resource name and a node label key share the qualified-name grammar
        _settings_check(lambda: check_label(self.gpu_resource, ""), "gpu_resource")
        _settings_check(lambda: check_label(self.gpu_node_label, ""), "gpu_node_label")
        domain = self.gpu_resource.partition("/")[0]
        if "/" not in self.gpu_resource or domain == "kubernetes.io" or domain.endswith(".kubernetes.io"):
            raise SpecError(
                f"gpu_resource {self.gpu_resource!r} is not an extended resource name",
                value=self.gpu_resource,
                hint="use a vendor-prefixed name such as nvidia.com/gpu or nvidia.com/mig-1g.10gb",
            )
        checks = [
            ("ttl_seconds_after_finished", self.ttl_seconds_after_finished, 0, None),
            ("max_configmap_bytes", self.max_configmap_bytes, 1, CONFIGMAP_HARD_LIMIT),
            ("runtime_uid", self.runtime_uid, 1, 2**31 - 1),
        ]
        for what, value, low, high in checks:
            if value is not None and (value < low or (high is not None and value > high)):
                limits = f"at least {low}" + (f" and at most {high}" if high is not None else "")
                raise SpecError(f"{what} {value!r} must be {limits}", value=value, hint=_SETTINGS_HINT)
        version = self.server_version
        if len(version) != 2 or not all(isinstance(part, int) and part >= 0 for part in version):
            raise SpecError(
                f"server_version {version!r} must be (major, minor), e.g. (1, 33)",
                value=version,
                hint=_SETTINGS_HINT,
            )

    def supports(self, major: int, minor: int) -> bool:
        """Whether the API server is at least ``major.minor``."""
        return self.server_version >= (major, minor)


def object_name(name: str, *, what: str, limit: int = 63) -> str:
    """Check a Kubernetes object name: an RFC 1123 label (``limit`` ≤ 63) or subdomain.

    Raises:
        SpecError: stating the rule, the limit and the bad value.
    """
    rule = "RFC 1123 label" if limit <= 63 else "RFC 1123 subdomain"
    if len(name) > limit:
        raise SpecError(
            f"{what} {name!r} is {len(name)} characters; an {rule} has at most {limit}",
            value=name,
            hint=f"shorten it to at most {limit} characters",
        )
    if not (DNS_LABEL if limit <= 63 else DNS_SUBDOMAIN).match(name):
        extra = "" if limit <= 63 else " (dots separate parts)"
        raise SpecError(
            f"{what} {name!r} is not an {rule}: lower-case letters, digits and '-'{extra}, "
            "starting and ending with a letter or digit",
            value=name,
            hint="use a name such as 'my-job-1'",
        )
    return name


def owner_label(owner: str) -> str:
    """``owner`` as a label value: lower-case, other characters to '-', at most 63."""
    text = re.sub(r"[^a-z0-9._-]", "-", owner.lower())[:63]
    text = re.sub(r"^[^a-z0-9]+|[^a-z0-9]+$", "", text)
    return text or "unknown"


def workload_labels(
    workload_id: str, kind: str, owner: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The labels every object of a workload carries (the watch selects on them).

    Raises:
        SpecError: ``extra`` sets a label that workbench or Kueue owns.
    """
    labels = {
        "app.kubernetes.io/name": APP_NAME,
        MANAGED_BY_LABEL: APP_NAME,
        "app.kubernetes.io/component": kind,
        ID_LABEL: workload_id,
        KIND_LABEL: kind,
        OWNER_LABEL: owner_label(owner),
    }
    for key in sorted(extra or {}):
        if key in _RESERVED_LABELS or key.startswith(f"{LABEL_DOMAIN}/"):
            raise SpecError(
                f"label {key!r} is set by workbench and cannot be given in --label",
                value=key,
                hint="use --queue for the Kueue queue, or another label key",
            )
        labels[key] = (extra or {})[key]
    return labels
