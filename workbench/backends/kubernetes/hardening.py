"""The object rules beyond Pod Security *restricted* (DESIGN.md), as pure builder pieces.

Every pod template the builders make runs with a read-only root filesystem, so it gets
writable emptyDirs at ``/tmp`` and at ``HOME`` (:func:`writable_dirs`); it pulls an image
named by tag ``Always`` (a tag can move) and one pinned by digest ``IfNotPresent``
(:func:`image_pull_policy`). Every workload gets one NetworkPolicy (:func:`network_policy`)
that admits ingress only from the workload's own pods, and for a Dask scheduler also from
the clients that must reach it; :func:`check_workload` checks that one selects every pod.
The per-pod rules are checked by :func:`~.policy.check_hardened`. No I/O, no ``kubernetes``
import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from .settings import ID_LABEL, KubeSettings

__all__ = [
    "HOME_DIR",
    "MIN_UID",
    "NAMESPACE_NAME_LABEL",
    "TMP_DIR",
    "check_workload",
    "image_pull_policy",
    "network_policy",
    "writable_dirs",
]

#: The pods' home: an emptyDir, since the root filesystem is read-only (the images' home too).
HOME_DIR = "/home/workbench"
TMP_DIR = "/tmp"  # noqa: S108 - a mount path inside the pod, not a file on this machine
#: The lowest uid/gid the pods may run as: a high uid cannot clash with a user of the host.
MIN_UID = 10000
#: The label the API server puts on every namespace (Kubernetes 1.21+): its name.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def image_pull_policy(image: str) -> str:
    """``IfNotPresent`` for an image pinned by digest (it cannot change), else ``Always``."""
    return "IfNotPresent" if "@sha256:" in image else "Always"


def writable_dirs() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The volumes and mounts that keep ``/tmp`` and ``HOME`` writable on a read-only root."""
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}, {"name": "home", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [
        {"name": "tmp", "mountPath": TMP_DIR},
        {"name": "home", "mountPath": HOME_DIR},
    ]
    return volumes, mounts


def network_policy(
    workload_id: str,
    labels: Mapping[str, str],
    settings: KubeSettings,
    *,
    client_ports: tuple[int, ...] = (),
) -> dict[str, Any]:
    """The NetworkPolicy of a workload: ingress to its pods only from its own pods.

    With ``client_ports`` (a Dask scheduler's), the clients may reach those ports too: the
    pods of the namespace labelled ``settings.client_labels`` (the notebook and Jupyter
    pods) and, with ``settings.dask_operator_namespace``, the Dask operator (it asks the
    scheduler whether it is idle and how many workers it wants). Egress is left open: a
    workload reads its data and images from wherever they are.
    """
    own = {"podSelector": {"matchLabels": {ID_LABEL: workload_id}}}
    ingress: list[dict[str, Any]] = [{"from": [own]}]
    if client_ports:
        peers: list[dict[str, Any]] = []
        if settings.client_labels:
            peers.append({"podSelector": {"matchLabels": dict(settings.client_labels)}})
        if settings.dask_operator_namespace:
            selector = {NAMESPACE_NAME_LABEL: settings.dask_operator_namespace}
            peers.append({"namespaceSelector": {"matchLabels": selector}})
        if peers:
            ports = [{"protocol": "TCP", "port": port} for port in client_ports]
            ingress.append({"from": peers, "ports": ports})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": workload_id, "namespace": settings.namespace, "labels": dict(labels)},
        "spec": {
            "podSelector": {"matchLabels": {ID_LABEL: workload_id}},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def find(
    node: Any, match: Callable[[Mapping[str, Any]], bool], path: str = ""
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every mapping in ``node`` that ``match`` accepts, with its path (not looking inside it)."""
    if isinstance(node, Mapping):
        if match(node):
            yield path, node
            return
        for key, value in node.items():
            yield from find(value, match, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from find(item, match, f"{path}[{index}]")


def pod_specs(node: Any, path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every pod spec in a document, wherever it sits (Job, CronJob, custom resources)."""
    return find(node, lambda m: isinstance(m.get("containers"), list), path)


def _templates(doc: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The labels of every pod (template) in a document: a mapping whose spec has containers."""
    for path, template in find(doc, lambda m: isinstance(_mapping(m.get("spec")).get("containers"), list)):
        yield path or "the pod", _mapping(_mapping(template.get("metadata")).get("labels"))


def check_workload(docs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Rules across the objects of one workload: a NetworkPolicy among them selects every pod.

    Only ``matchLabels`` selectors count (what the builders write).
    """
    selectors = [
        dict(_mapping(_mapping(_mapping(doc.get("spec")).get("podSelector")).get("matchLabels")))
        for doc in docs
        if doc.get("kind") == "NetworkPolicy"
    ]
    problems = []
    for doc in docs:
        name = f"{doc.get('kind')}/{_mapping(doc.get('metadata')).get('name')}"
        for where, labels in _templates(doc):
            if not any(selector and selector.items() <= labels.items() for selector in selectors):
                problems.append(f"{name}: {where} is selected by no NetworkPolicy of the workload")
    return problems
