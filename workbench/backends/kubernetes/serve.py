"""Endpoints (``serve`` workloads) on the Kubernetes backend: a Deployment behind a Service.

The objects come from :mod:`.serve_manifests`. Every change is a patch of the Deployment
that the Deployment controller rolls out (maxUnavailable 0: the old pods answer until the
new ones are ready), and it returns at once; :meth:`ServeEndpoints.rollout_state` says how
far it got, as ``kubectl rollout status`` does:

- rollout: the revision's contents go to a new immutable ConfigMap ``W-r<N>``, then the
  Deployment's pod template is replaced (a JSON patch); with ``--canary P`` the new template
  runs in a second Deployment ``W-canary`` instead, whose replica count carries the split;
- promote: the canary's template becomes the Deployment's; once that rollout completed, the
  canary Deployment goes;
- undo: as ``kubectl rollout undo`` (a canary is simply dropped);
- scale: the Deployment's replicas, or an autoscaling/v2 HorizontalPodAutoscaler;
- request: one HTTP request through the API server's service proxy.

Deployments and ReplicaSets come from a list+watch of their own (:attr:`tracker`, started on
first use), pods from the backend's. With ``--operator kserve`` each call goes to
:class:`~.serve_kserve.KServeEndpoints` instead.
"""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ...errors import WorkbenchError
from ...spec import ServeSpec, parse_spec
from ...store import Workload
from ..base import Payload
from .build import SPEC_ANNOTATION
from .client import Resource, register_resource
from .manifests import container_resources
from .part import BackendPart
from .preflight import check_fits
from .serve_changes import DEPLOYMENT, EndpointChanges
from .serve_manifests import serve_labels
from .serve_revision import canary_name
from .serve_state import EndpointState
from .serve_status import template_of
from .settings import ID_LABEL
from .status import timestamp

if TYPE_CHECKING:
    from .backend import KubernetesBackend
    from .serve_kserve import KServeEndpoints

RESOURCES = (
    DEPLOYMENT,
    Resource("ReplicaSet", "apps", "v1", "replicasets"),
    Resource("HorizontalPodAutoscaler", "autoscaling", "v2", "horizontalpodautoscalers"),
    Resource("PodDisruptionBudget", "policy", "v1", "poddisruptionbudgets"),
)


class ServeEndpoints(BackendPart, EndpointState, EndpointChanges):
    """The endpoint half of :class:`~.backend.KubernetesBackend` (which dispatches here by kind).

    Its tracker lists and watches Deployments and ReplicaSets (this backend's only).
    """

    TRACKED = ("Deployment", "ReplicaSet")

    def __init__(self, backend: KubernetesBackend) -> None:
        super().__init__(backend)
        self.store = backend.store
        for resource in RESOURCES:
            register_resource(resource)

    @functools.cached_property
    def kserve(self) -> KServeEndpoints:
        from .serve_kserve import KServeEndpoints

        return KServeEndpoints(self)

    def is_kserve(self, workload: Workload) -> bool:
        return workload.spec.get("operator") == "kserve"

    # -- reading ---------------------------------------------------------------------------------------
    def spec_of(self, workload: Workload) -> ServeSpec:
        """The record's spec (its code is not kept there: the ConfigMaps hold it)."""
        data = dict(workload.spec)
        if not data.get("script"):
            data["code"] = data.get("code") or ""
        spec = parse_spec(data)
        assert isinstance(spec, ServeSpec)
        return spec

    def labels_of(self, workload: Workload, spec: ServeSpec) -> dict[str, str]:
        return serve_labels(workload.id, workload.owner, spec)

    def deployments(self, workload_id: str, *, fresh: bool = True) -> dict[str, dict[str, Any]]:
        """The workload's Deployments by name (``W``, and ``W-canary`` during a canary)."""
        found = self.tracker.objects("Deployment", {ID_LABEL: workload_id}, fresh=fresh)
        return {obj["metadata"]["name"]: obj for obj in found}

    def replica_sets(self, workload_id: str, *, fresh: bool = True) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.tracker.objects("ReplicaSet", {ID_LABEL: workload_id}, fresh=fresh)
        return found

    # -- submit ----------------------------------------------------------------------------------------
    def submit(
        self, workload_id: str, spec: ServeSpec, payload: Payload, docs: list[dict[str, Any]]
    ) -> Workload:
        if spec.operator == "kserve":
            self.kserve.require()
        main = next(doc for doc in docs if doc["kind"] in ("Deployment", "InferenceService"))
        pod = template_of(main).get("spec") or main["spec"].get("predictor") or {}
        requests = container_resources(spec.resources, self.backend.kube).get("limits", {})
        check_fits(requests, pod.get("nodeSelector", {}), self.client.nodes())
        info = self.initial_info(workload_id, spec)
        run_dir = self.backend.insert_pending(
            workload_id, spec, payload, f"creating the {main['kind']}", info
        )
        try:
            self.backend.keep_payload(run_dir, spec, payload)
            self.client.create_all(docs)
        except BaseException:
            self.store.delete(workload_id)
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        return self.store.get(workload_id)

    # -- output and stopping ---------------------------------------------------------------------------
    def logs(self, workload: Workload, *, follow: bool = False) -> Iterator[str]:
        from .serve_access import endpoint_logs

        yield from endpoint_logs(self, workload, follow=follow)

    def request(
        self, workload: Workload, method: str, path: str, body: bytes | None, timeout: float
    ) -> tuple[int, bytes]:
        from .serve_access import proxy_request

        service, port = (
            (f"{workload.id}-predictor", "80") if self.is_kserve(workload) else (workload.id, "http")
        )
        return proxy_request(self.client, service, port, method, path, body, timeout)

    def delete_objects(self, workload: Workload) -> None:
        if self.is_kserve(workload):
            self.kserve.delete_objects(workload)
        else:
            for kind, name in (
                ("HorizontalPodAutoscaler", workload.id),
                ("Deployment", canary_name(workload.id)),
                ("Deployment", workload.id),
                ("PodDisruptionBudget", workload.id),
                ("Service", workload.id),
            ):
                self.client.delete(kind, name)
        configmaps, _ = self.client.list("ConfigMap", selector=f"{ID_LABEL}={workload.id}")
        for obj in configmaps:
            self.client.delete("ConfigMap", obj["metadata"]["name"])
        self.client.delete("NetworkPolicy", workload.id)

    def discover(self, known: set[str]) -> None:
        """Add the endpoints found by their labels (only once this process tracks endpoints)."""
        if self._tracker is None:
            return
        found = list(self.tracker.objects("Deployment"))
        if "kserve" in self.__dict__:
            found += self.kserve.tracked()
        for obj in found:
            meta = obj.get("metadata", {})
            workload_id = (meta.get("labels") or {}).get(ID_LABEL)
            raw = (meta.get("annotations") or {}).get(SPEC_ANNOTATION)
            if not workload_id or workload_id in known or not raw:
                continue
            try:
                data = json.loads(raw)
                if not data.get("script"):
                    data["code"] = ""
                spec = parse_spec(data)
            except (WorkbenchError, ValueError):
                continue
            if not isinstance(spec, ServeSpec):
                continue
            known.add(workload_id)
            owner = (meta.get("annotations") or {}).get("workbench.jupyter.org/owner", "")
            info, created = self.initial_info(workload_id, spec), timestamp(meta.get("creationTimestamp"))
            self.backend.insert_pending(workload_id, spec, Payload(), "", info, created=created, owner=owner)


__all__ = ["RESOURCES", "ServeEndpoints"]
