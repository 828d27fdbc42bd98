"""The least-privilege RBAC objects the Kubernetes backend needs (`workbench rbac`)."""

from __future__ import annotations

from typing import Any

from .settings import APP_NAME, CLUSTER_PERMISSIONS, MANAGED_BY_LABEL, NAMESPACED_PERMISSIONS

_LABELS = {"app.kubernetes.io/name": APP_NAME, MANAGED_BY_LABEL: APP_NAME}


def _rules(table: tuple[tuple[str, str, tuple[str, ...]], ...]) -> list[dict[str, Any]]:
    return [
        {"apiGroups": [group], "resources": [resource], "verbs": list(verbs)}
        for group, resource, verbs in table
    ]


def rbac_manifests(
    namespace: str, service_account: str = "workbench", *, cluster: bool = True
) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding (and, optionally, the read-only cluster rules).

    The cluster part (listing nodes for the preflight check, reading CRDs for `doctor`, reading
    the Kubeflow Trainer runtime a TrainJob names) is optional: without it the backend skips the
    capacity and runtime checks.
    """
    meta = {"namespace": namespace, "labels": dict(_LABELS)}
    subject = {"kind": "ServiceAccount", "name": service_account, "namespace": namespace}
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": service_account, **meta}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": APP_NAME, **meta},
            "rules": _rules(NAMESPACED_PERMISSIONS),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": APP_NAME, **meta},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": APP_NAME},
            "subjects": [subject],
        },
    ]
    if cluster:
        cluster_name = f"{APP_NAME}-{namespace}"
        docs += [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": cluster_name, "labels": dict(_LABELS)},
                "rules": _rules(CLUSTER_PERMISSIONS),
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": cluster_name, "labels": dict(_LABELS)},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": cluster_name,
                },
                "subjects": [subject],
            },
        ]
    return docs
