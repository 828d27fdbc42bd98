"""The served resource types and the discovery documents that describe them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = VERBS
    categories: tuple[str, ...] = ()
    #: the rule metadata.name must follow: subdomain, label or rfc1035
    name_rule: str = "subdomain"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        """Version-independent identity: objects are stored once per (group, plural)."""
        return (self.group, self.plural)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


def _core(plural: str, kind: str, **kw: Any) -> ResourceType:
    return ResourceType("", "v1", plural, kind, **kw)


BUILTINS: tuple[ResourceType, ...] = (
    _core(
        "namespaces",
        "Namespace",
        namespaced=False,
        short_names=("ns",),
        subresources=("status",),
        name_rule="label",
    ),
    _core("pods", "Pod", short_names=("po",), subresources=("status", "log"), categories=("all",)),
    _core("configmaps", "ConfigMap", short_names=("cm",)),
    _core("secrets", "Secret"),
    _core(
        "services",
        "Service",
        short_names=("svc",),
        subresources=("status",),
        categories=("all",),
        name_rule="rfc1035",
    ),
    _core("serviceaccounts", "ServiceAccount", short_names=("sa",)),
    _core("events", "Event", short_names=("ev",)),
    _core("nodes", "Node", namespaced=False, short_names=("no",), subresources=("status",)),
    _core("persistentvolumeclaims", "PersistentVolumeClaim", short_names=("pvc",), subresources=("status",)),
    ResourceType("batch", "v1", "jobs", "Job", subresources=("status",), categories=("all",)),
    ResourceType(
        "batch",
        "v1",
        "cronjobs",
        "CronJob",
        short_names=("cj",),
        subresources=("status",),
        categories=("all",),
    ),
    _core("endpoints", "Endpoints", short_names=("ep",)),
    ResourceType(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        short_names=("deploy",),
        subresources=("status", "scale"),
        categories=("all",),
    ),
    ResourceType(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        short_names=("rs",),
        subresources=("status", "scale"),
        categories=("all",),
    ),
    ResourceType("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"),
    ResourceType(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        short_names=("hpa",),
        subresources=("status",),
        categories=("all",),
    ),
    ResourceType(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        short_names=("pdb",),
        subresources=("status",),
    ),
    ResourceType("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short_names=("netpol",)),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    ResourceType(
        "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False
    ),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        namespaced=False,
        verbs=("create",),
    ),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short_names=("crd", "crds"),
        subresources=("status",),
    ),
)


@dataclass
class Registry:
    """Resource types by group/version/plural, in registration order."""

    types: dict[tuple[str, str], dict[str, ResourceType]] = field(default_factory=dict)

    @classmethod
    def default(cls) -> Registry:
        registry = cls()
        for rt in BUILTINS:
            registry.add(rt)
        return registry

    def add(self, rt: ResourceType) -> None:
        self.types.setdefault((rt.group, rt.version), {})[rt.plural] = rt

    def remove(self, group: str, plural: str) -> None:
        for (g, version), by_plural in list(self.types.items()):
            if g == group:
                by_plural.pop(plural, None)
                if not by_plural:
                    del self.types[(g, version)]

    def find(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self.types.get((group, version), {}).get(plural)

    def by_key(self, key: tuple[str, str]) -> ResourceType | None:
        for (group, _version), by_plural in self.types.items():
            if group == key[0] and key[1] in by_plural:
                return by_plural[key[1]]
        return None

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for rt in self.types.get((group, version), {}).values():
            if rt.kind == kind:
                return rt
        return None

    def has_version(self, group: str, version: str) -> bool:
        return (group, version) in self.types

    # discovery documents ------------------------------------------------------------------

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for group, version in self.types:
            if group:
                out.setdefault(group, []).append(version)
        return out

    def api_group(self, group: str) -> dict[str, Any] | None:
        versions = self.groups().get(group)
        if not versions:
            return None
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": group,
            "versions": entries,
            "preferredVersion": entries[0],
        }

    def group_list(self) -> dict[str, Any]:
        groups = []
        for group in self.groups():
            doc = self.api_group(group)
            assert doc is not None
            groups.append({k: doc[k] for k in ("name", "versions", "preferredVersion")})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        by_plural = self.types.get((group, version))
        if by_plural is None:
            return None
        resources: list[dict[str, Any]] = []
        for rt in by_plural.values():
            entry: dict[str, Any] = {
                "name": rt.plural,
                "singularName": rt.singular,
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": list(rt.verbs),
            }
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            if rt.categories:
                entry["categories"] = list(rt.categories)
            resources.append(entry)
            for sub in rt.subresources:
                verbs = ["get"] if sub == "log" else ["get", "patch", "update"]
                entry = {
                    "name": f"{rt.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": verbs,
                }
                if sub == "scale":
                    entry.update(group="autoscaling", version="v1", kind="Scale")
                resources.append(entry)
        doc: dict[str, Any] = {"kind": "APIResourceList", "groupVersion": f"{group}/{version}".lstrip("/")}
        if group:
            doc["apiVersion"] = "v1"
        doc["resources"] = resources
        return doc


def crd_types(crd: dict[str, Any]) -> list[ResourceType]:
    """The resource types a CustomResourceDefinition serves (one per served version)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out = []
    for version in spec.get("versions") or []:
        if version.get("served", True):
            out.append(
                ResourceType(
                    group=spec.get("group", ""),
                    version=version["name"],
                    plural=names.get("plural", ""),
                    kind=names.get("kind", ""),
                    namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                    short_names=tuple(names.get("shortNames") or ()),
                    categories=tuple(names.get("categories") or ()),
                    subresources=tuple((version.get("subresources") or {}).keys() & {"status"}),
                )
            )
    return out


def crd_document(group: str, version: str, plural: str, kind: str, namespaced: bool) -> dict[str, Any]:
    """A minimal CustomResourceDefinition that accepts any object."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced" if namespaced else "Cluster",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }
