"""Dask clusters on the Kubernetes backend, through the dask-kubernetes operator.

A ``dask`` workload is a DaskCluster (and, with ``--adapt``, a DaskAutoscaler) built by
:mod:`.dask_manifests`; the operator makes the scheduler, its Service and the workers. The
cluster is the source of truth, as for pods:

- status: the DaskCluster's ``status.phase`` (Created → Pending → Running, or Error), read
  through a second :class:`~.tracker.Tracker` that lists and watches DaskClusters. It is
  created only once a Dask workload is handled, so pod-only use costs no extra request.
  The scheduler's and workers' pods (the operator copies our labels onto them) come from
  the backend's pod tracker and say, in the cluster's words, why a cluster still waits.
- address: once Running, the scheduler Service ``<name>-scheduler``: its LoadBalancer
  ingress when it has one, else its in-cluster DNS name (what a JupyterHub pod uses).
- scale: the DaskCluster's ``spec.worker.replicas`` and the default DaskWorkerGroup's (what
  the operator scales and what ``KubeCluster.scale`` patches), after deleting any
  DaskAutoscaler; adapt: create or patch the DaskAutoscaler.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import BackendUnavailable, Conflict, NotFound, SpecError, Timeout, WorkbenchError
from ...spec import DaskSpec, parse_spec
from ...store import ACTIVE, CANCELLED, FAILED, PENDING, RUNNING, SUCCEEDED, Workload
from ..base import Payload
from .build import refuse_unsafe
from .client import Resource, register_resource
from .dask_manifests import (
    DASK_GROUP,
    autoscaler_manifest,
    scheduler_service_name,
    worker_group_name,
)
from .manifests import container_resources
from .part import BackendPart
from .preflight import check_fits
from .settings import ID_LABEL, workload_labels
from .status import Observed, pod_pending_reason, timestamp

if TYPE_CHECKING:
    from .backend import KubernetesBackend

INSTALL_COMMAND = (
    "helm install --repo https://helm.dask.org --create-namespace -n dask-operator "
    "--generate-name dask-kubernetes-operator"
)
RESOURCES = (
    Resource("DaskCluster", DASK_GROUP, "v1", "daskclusters", custom=True),
    Resource("DaskWorkerGroup", DASK_GROUP, "v1", "daskworkergroups", custom=True),
    Resource("DaskAutoscaler", DASK_GROUP, "v1", "daskautoscalers", custom=True),
)
COMPONENT_LABEL = "dask.org/component"
_PLURALS = frozenset(r.plural for r in RESOURCES)


def register() -> None:
    """Teach the client the operator's kinds (a 404 on them means the operator is missing)."""
    for resource in RESOURCES:
        register_resource(resource)


def operator_missing(plural: str) -> BackendUnavailable:
    return BackendUnavailable(
        f"the Dask operator's CRDs are missing: the cluster does not serve {plural}.{DASK_GROUP}",
        value=plural,
        hint=f"install the Dask operator with `{INSTALL_COMMAND}`, or use --backend local",
    )


def _newest(pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return max(pods, key=lambda p: p.get("metadata", {}).get("creationTimestamp", ""), default=None)


def _component(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata", {}).get("labels") or {}).get(COMPONENT_LABEL, ""))


def _phase(obj: Mapping[str, Any] | None) -> str:
    return str(((obj or {}).get("status") or {}).get("phase") or "")


def observe_cluster(
    cluster: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]], adapt: Sequence[int] | None = None
) -> Observed | None:
    """A Dask cluster's status from its DaskCluster and its pods; None when the DaskCluster is gone.

    With ``adapt`` (MIN, MAX) the autoscaler, not the DaskCluster, decides how many workers run.
    """
    if cluster is None:
        return None
    phase = _phase(cluster)
    if phase == "Error":
        return Observed(FAILED, "the Dask operator refused the DaskCluster (status.phase Error)")
    scheduler = _newest([p for p in pods if _component(p) == "scheduler"])
    if scheduler is not None:
        reason = pod_pending_reason(scheduler)
        if _phase(scheduler) != "Running" or reason != "starting":
            return Observed(
                PENDING, f"scheduler: {'starting the container' if reason == 'starting' else reason}"
            )
    elif phase in ("", "Created"):
        return Observed(PENDING, "waiting for the Dask operator to create the scheduler")
    if phase != "Running":
        return Observed(PENDING, f"waiting for the scheduler Service (DaskCluster {phase or 'created'})")
    workers = [p for p in pods if _component(p) == "worker"]
    running = [p for p in workers if _phase(p) == "Running"]
    wanted = ((cluster.get("spec") or {}).get("worker") or {}).get("replicas", len(workers))
    message = f"{len(running)}/{wanted} workers running"
    if adapt:
        message = f"{len(running)} workers running (adaptive, {adapt[0]} to {adapt[1]})"
    waiting = [p for p in workers if _phase(p) == "Pending"]
    if waiting:
        message += f"; a worker waits: {pod_pending_reason(waiting[0])}"
    started = timestamp(((scheduler or {}).get("status") or {}).get("startTime"))
    return Observed(RUNNING, message, None, started)


def address_info(service: Mapping[str, Any], namespace: str) -> dict[str, str]:
    """The scheduler's and dashboard's addresses from the scheduler Service."""
    name = service.get("metadata", {}).get("name", "")
    ports = {p.get("name"): p.get("port") for p in (service.get("spec") or {}).get("ports") or []}
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    host = (ingress[0].get("ip") or ingress[0].get("hostname")) if ingress else None
    host = host or f"{name}.{namespace}.svc.cluster.local"
    return {
        "address": f"tcp://{host}:{ports.get('tcp-comm', 8786)}",
        "dashboard": f"http://{host}:{ports.get('http-dashboard', 8787)}/status",
    }


class DaskClusters(BackendPart):
    """The Dask half of :class:`~.backend.KubernetesBackend` (which dispatches here by kind)."""

    TRACKED = ("DaskCluster",)

    def __init__(self, backend: KubernetesBackend) -> None:
        super().__init__(backend)
        self.store = backend.store
        register()

    # -- requests on one object (a 404 there means "gone", not "no operator") --------------------
    def _create(self, doc: Mapping[str, Any]) -> None:
        try:
            self.client.create(doc)
        except BackendUnavailable as exc:
            raise operator_missing(str(exc.value)) if exc.value in _PLURALS else exc from None

    # -- submit ----------------------------------------------------------------------------------------
    def submit(
        self, workload_id: str, spec: DaskSpec, payload: Payload, docs: list[dict[str, Any]]
    ) -> Workload:
        kube = self.backend.kube
        worker = next(doc for doc in docs if doc["kind"] == "DaskCluster")["spec"]["worker"]
        requests = container_resources(spec.resources, kube).get("limits", {})
        check_fits(requests, worker["spec"].get("nodeSelector", {}), self.client.nodes())
        run_dir = self.backend.settings.runs_dir / workload_id
        adapt = [spec.adapt.minimum, spec.adapt.maximum] if spec.adapt else None
        self.backend.insert_pending(
            workload_id,
            spec,
            payload,
            "creating the DaskCluster",
            info={"requested_workers": worker["replicas"], "adapt": adapt},
        )
        try:
            if run_dir.exists():
                shutil.rmtree(run_dir)
            run_dir.mkdir(parents=True)
            (run_dir / "spec.json").write_text(spec.model_dump_json(indent=2))
            try:
                created = self.client.create_all(docs)
            except BackendUnavailable as exc:
                if exc.value in _PLURALS:
                    raise operator_missing(str(exc.value)) from None
                raise
            cluster = next(obj for obj in created if obj["kind"] == "DaskCluster")
            for obj in created:  # deleting the DaskCluster then removes its NetworkPolicy too
                if obj["kind"] == "NetworkPolicy":
                    self.backend.adopt(obj, cluster)
        except BaseException:
            self.store.delete(workload_id)
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        return self.store.get(workload_id)

    # -- state -----------------------------------------------------------------------------------------
    def _cluster(self, workload_id: str, *, fresh: bool = True) -> dict[str, Any] | None:
        found = self.tracker.objects("DaskCluster", {ID_LABEL: workload_id}, fresh=fresh)
        return found[0] if found else None

    def refresh(self, workload: Workload) -> Workload:
        if workload.status not in ACTIVE:
            return workload
        adapt = workload.info.get("adapt")
        observed = observe_cluster(self._cluster(workload.id), self.backend.pods(workload.id), adapt)
        if observed is None:
            if time.time() - workload.created < 5:
                return workload  # created a moment ago; the list may predate it
            idle = workload.spec.get("idle_timeout")
            if workload.cancel_requested:
                status, message = CANCELLED, "cancelled"
            elif idle:
                status, message = (
                    SUCCEEDED,
                    f"the DaskCluster is gone (the operator deletes it after {idle:g}s idle)",
                )
            else:
                status, message = FAILED, "the DaskCluster was deleted outside workbench"
            self.store.finish(workload.id, status, exit_code=None, message=message)
            return self.store.get(workload.id)
        if observed.status == FAILED:
            self.store.finish(workload.id, FAILED, exit_code=None, message=observed.message)
            return self.store.get(workload.id)
        fields: dict[str, Any] = {"status": observed.status, "message": observed.message}
        if observed.started and not workload.started:
            fields["started"] = observed.started
        if any(getattr(workload, key) != value for key, value in fields.items()):
            self.store.update(workload.id, only_if=ACTIVE, **fields)
        return self.store.get(workload.id)

    def _active(self, workload: Workload) -> Workload:
        current = self.refresh(workload)
        if current.done:
            raise Conflict(
                f"Dask cluster {current.id} is {current.status}: {current.message or 'no reason recorded'}",
                value=current.id,
                hint="start it again with `%dask --name NAME` or `workbench dask up --name NAME`",
            )
        return current

    def address(self, workload: Workload, timeout: float) -> Workload:
        """The record once the cluster runs and its scheduler Service is known (waits while it starts)."""
        deadline = time.monotonic() + timeout
        current = self._active(workload)
        if current.status == RUNNING and current.info.get("address"):
            return current
        self.tracker.watch()  # from here on the caches are kept current: polling them costs no request
        self.backend.tracker.watch()
        while True:
            current = self._active(self.store.get(workload.id))
            if current.status == RUNNING:
                if current.info.get("address"):
                    return current
                try:
                    service = self.client.get("Service", scheduler_service_name(current.id))
                except NotFound:
                    service = None
                if service is not None:
                    info = {**current.info, **address_info(service, self.client.namespace)}
                    self.store.update(current.id, only_if=ACTIVE, info=info)
                    return self.store.get(current.id)
            if time.monotonic() >= deadline:
                raise Timeout(
                    f"Dask cluster {current.id} did not start within {timeout:.0f}s: {current.message}",
                    value=current.id,
                    hint=f"`workbench describe {current.id}` shows why it waits",
                )
            time.sleep(0.1)

    # -- scaling ---------------------------------------------------------------------------------------
    def scale(self, workload: Workload, workers: int) -> Workload:
        if workers < 0:
            raise SpecError(f"cannot scale to {workers} workers", value=workers, hint="give 0 or more")
        current = self._active(workload)
        self.client.delete("DaskAutoscaler", current.id)  # adaptivity would undo the new count
        patch = {"spec": {"worker": {"replicas": workers}}}
        try:
            self.client.patch("DaskCluster", current.id, patch)
        except NotFound:
            raise Conflict(f"the DaskCluster of {current.id} is gone", value=current.id) from None
        # the operator scales this group; it may not exist yet (then it starts from the cluster's spec)
        with contextlib.suppress(NotFound):
            self.client.patch("DaskWorkerGroup", worker_group_name(current.id), patch)
        self.store.update(current.id, info={**current.info, "requested_workers": workers, "adapt": None})
        return self.store.get(current.id)

    def adapt(self, workload: Workload, minimum: int, maximum: int) -> Workload:
        if not 0 <= minimum <= maximum or maximum < 1:
            raise SpecError(
                f"adapt {minimum}:{maximum} must be MIN:MAX with 0 <= MIN <= MAX and MAX >= 1",
                value=f"{minimum}:{maximum}",
                hint="e.g. 1:8",
            )
        current = self._active(workload)
        try:
            self.client.patch(
                "DaskAutoscaler", current.id, {"spec": {"minimum": minimum, "maximum": maximum}}
            )
        except NotFound:
            labels = workload_labels(current.id, "dask", current.owner, current.spec.get("labels") or {})
            doc = autoscaler_manifest(
                current.id, minimum, maximum, labels=labels, namespace=self.client.namespace
            )
            refuse_unsafe([doc])
            self._create(doc)
        self.store.update(current.id, info={**current.info, "adapt": [minimum, maximum]})
        return self.store.get(current.id)

    # -- output and stopping ---------------------------------------------------------------------------
    def _scheduler_pod(self, workload_id: str) -> dict[str, Any] | None:
        pods = [p for p in self.backend.pods(workload_id) if _component(p) == "scheduler"]
        started = [p for p in pods if _phase(p) in ("Running", "Succeeded", "Failed")]
        return started[-1] if started else None

    def _pod_logs(self, pod: Mapping[str, Any], *, follow: bool) -> Iterator[str]:
        container = ((pod.get("spec") or {}).get("containers") or [{}])[0].get("name", "scheduler")
        for chunk in self.client.logs(pod["metadata"]["name"], container=container, follow=follow):
            yield chunk.decode("utf-8", "replace")

    def logs(self, workload: Workload, *, follow: bool = False) -> Iterator[str]:
        """The scheduler's output; with ``follow``, until the scheduler ends."""
        pod = self._scheduler_pod(workload.id)
        if not follow:
            if pod is not None:
                yield "".join(self._pod_logs(pod, follow=False))
            return
        while pod is None:
            if self.refresh(self.store.get(workload.id)).done:
                return
            time.sleep(0.5)
            pod = self._scheduler_pod(workload.id)
        yield from self._pod_logs(pod, follow=True)

    def delete_objects(self, workload_id: str) -> None:
        self.client.delete("DaskAutoscaler", workload_id)
        self.client.delete("DaskCluster", workload_id)
        self.client.delete("NetworkPolicy", workload_id)

    def cancel(self, workload: Workload) -> Workload:
        workload = self.refresh(workload)
        if workload.done:
            return workload
        self.store.update(workload.id, cancel_requested=1)
        self.delete_objects(workload.id)
        self.store.finish(workload.id, CANCELLED, exit_code=None, message="cancelled")
        return self.store.get(workload.id)

    def discover(self, known: set[str]) -> None:
        """Add the DaskClusters found by their labels (only once this process tracks Dask clusters)."""
        from .backend import SPEC_ANNOTATION

        if self._tracker is None:
            return
        for cluster in self.tracker.objects("DaskCluster"):
            meta = cluster.get("metadata", {})
            workload_id = (meta.get("labels") or {}).get(ID_LABEL)
            raw = (meta.get("annotations") or {}).get(SPEC_ANNOTATION)
            if not workload_id or workload_id in known or not raw:
                continue
            try:
                spec = parse_spec(json.loads(raw))
            except (WorkbenchError, ValueError):
                continue
            self.store.insert(
                Workload(
                    id=workload_id,
                    kind="dask",
                    backend=self.backend.name,
                    status=PENDING,
                    spec=spec.model_dump(mode="json"),
                    run_dir=str(Path(self.backend.settings.runs_dir) / workload_id),
                    created=timestamp(meta.get("creationTimestamp")) or time.time(),
                    owner=(meta.get("annotations") or {}).get("workbench.jupyter.org/owner", ""),
                )
            )
