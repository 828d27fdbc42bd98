"""The Kubernetes backend: a pod workload is an immutable ConfigMap and a one-pod Job.

A dask workload is a DaskCluster of the dask-kubernetes operator (:mod:`.dask`); a train
workload is a headless Service and an Indexed Job, or a Kubeflow PyTorchJob (:mod:`.train`);
a notebook workload is a papermill Job, or a CronJob for a schedule (:mod:`.notebook`); a
serve workload is a Deployment behind a Service, or a KServe InferenceService (:mod:`.serve`).
This class dispatches to them by kind. What the pods use comes from the cluster's
``metrics.k8s.io`` API when it has one (:mod:`.metering`).

The cluster is the source of truth; the store is a cache of it, so the kernel, the CLI
and the server see the same workloads and a workload launched elsewhere is found by its
labels. Submitting validates and builds every manifest first, checks the request against
the nodes, then creates the objects, rolling back what was created if a later step fails.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ...config import Settings
from ...errors import Conflict, NotFound, WorkbenchError
from ...private import make_private, private_dir
from ...spec import CodeSpec, CommonSpec, DaskSpec, NotebookSpec, ServeSpec, TrainSpec
from ...store import ACTIVE, CANCELLED, FAILED, PENDING, SUCCEEDED, Store, Workload
from ..base import (
    Check,
    DaskControl,
    Diagnosis,
    Discovery,
    Manifests,
    Metering,
    Payload,
    Probing,
    Scheduling,
    Serving,
)
from .build import LATEST_VERSION, SPEC_ANNOTATION, build_manifests, kube_settings, payload_parts
from .endpoint_ability import EndpointAbility
from .locations import outputs_warning
from .logs import MarkerFilter, results_secret_name, sealed_results
from .manifests import container_resources
from .metering import Metered
from .preflight import check_fits
from .settings import APP_NAME, ID_LABEL, MANAGED_BY_LABEL, KubeSettings
from .status import Observed, observe

__all__ = [
    "LATEST_VERSION",
    "SELECTOR",
    "SPEC_ANNOTATION",
    "KubernetesBackend",
    "build_manifests",
    "kube_settings",
    "payload_parts",
]

SELECTOR = f"{MANAGED_BY_LABEL}={APP_NAME}"
#: what the tracker lists and watches (CronJobs: scheduled notebook runs)
TRACKED_KINDS = ("Job", "Pod", "CronJob")

if TYPE_CHECKING:
    from .dask import DaskClusters
    from .notebook import NotebookRuns
    from .train import TrainJobs


class KubernetesBackend(EndpointAbility, Metered):
    """Runs workloads on the cluster of the configured kubeconfig context (or in-cluster)."""

    name = "kubernetes"
    abilities: ClassVar[frozenset[type]] = frozenset(
        {DaskControl, Discovery, Manifests, Diagnosis, Metering, Probing, Scheduling, Serving}
    )

    def __init__(self, settings: Settings, store: Store, client: Any = None) -> None:
        self.settings = settings
        self.store = store
        self._client = client
        self._tracker: Any = None
        self._kube: KubeSettings | None = None
        self._said_outputs = False  # the "outputs are not kept" line, once per process

    # -- connections -----------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            from .client import KubeClient

            self._client = KubeClient(self.settings.kubernetes)
        return self._client

    @property
    def tracker(self) -> Any:
        if self._tracker is None:
            from .tracker import Tracker

            self._tracker = Tracker(self.client, SELECTOR, TRACKED_KINDS)
        return self._tracker

    @functools.cached_property
    def dask(self) -> DaskClusters:
        """The Dask half of the backend (imported and started on first use)."""
        from .dask import DaskClusters

        return DaskClusters(self)

    @functools.cached_property
    def train(self) -> TrainJobs:
        """The distributed-training half of the backend (imported on first use)."""
        from .train import TrainJobs

        return TrainJobs(self)

    @functools.cached_property
    def notebook(self) -> NotebookRuns:
        """The notebook-run half of the backend (imported on first use)."""
        from .notebook import NotebookRuns

        return NotebookRuns(self)

    @property
    def kube(self) -> KubeSettings:
        if self._kube is None:
            base = kube_settings(self.settings, self.client.server_version())
            self._kube = KubeSettings(**{**base.__dict__, "namespace": self.client.namespace})
        return self._kube

    # -- submit ----------------------------------------------------------------------------
    def submit(self, workload_id: str, spec: CommonSpec, payload: Payload) -> Workload:
        try:
            self.store.get(workload_id)
        except NotFound:
            pass
        else:
            raise Conflict(
                f"a workload named {workload_id!r} already exists",
                value=workload_id,
                hint=f"choose another --name, or `workbench rm {workload_id}` first",
            )
        docs = build_manifests(workload_id, spec, payload, self.settings, self.kube)
        if isinstance(spec, DaskSpec):
            return self.dask.submit(workload_id, spec, payload, docs)
        if isinstance(spec, TrainSpec):
            return self._say_outputs(spec, self.train.submit(workload_id, spec, payload, docs))
        if isinstance(spec, NotebookSpec):
            return self.notebook.submit(workload_id, spec, payload, docs)
        if isinstance(spec, ServeSpec):
            return self.serve.submit(workload_id, spec, payload, docs)
        job = docs[-1]
        pod_spec = job["spec"]["template"]["spec"]
        requests = container_resources(spec.resources, self.kube).get("limits", {})
        check_fits(requests, pod_spec.get("nodeSelector", {}), self.client.nodes())
        run_dir = self.insert_pending(workload_id, spec, payload, "creating the Job")
        try:
            self.keep_payload(run_dir, spec, payload)
            created = self.client.create_all(docs)
            for obj in created[:-1]:  # the Job's TTL (or deletion) then removes them too
                self.adopt(obj, created[-1])
        except BaseException:
            self.store.delete(workload_id)
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        return self._say_outputs(spec, self.store.get(workload_id))

    def _say_outputs(self, spec: CommonSpec, workload: Workload) -> Workload:
        """Say once that a pod's or training job's outputs are not kept without --output."""
        warning = outputs_warning(spec)
        if warning and not self._said_outputs:
            self._said_outputs = True
            print(warning, file=sys.stderr, flush=True)
        return workload

    def insert_pending(
        self,
        workload_id: str,
        spec: CommonSpec,
        payload: Payload,
        message: str,
        info: dict[str, Any] | None = None,
        *,
        created: float | None = None,
        owner: str | None = None,
    ) -> Path:
        """Record a workload about to be created, or found in the cluster (pending, ``message``);
        its run directory. ``created`` and ``owner`` default to now and this user."""
        run_dir = self.settings.runs_dir / workload_id
        self.store.insert(
            Workload(
                id=workload_id,
                kind=str(getattr(spec, "kind", "pod")),
                backend=self.name,
                status=PENDING,
                spec=spec.model_dump(mode="json", exclude={"code"}),
                run_dir=str(run_dir),
                created=created or time.time(),
                owner=self.settings.owner if owner is None else owner,
                session=payload.session,
                message=message,
                info=info or {},
            ),
            results_key=payload.results_key,
        )
        return run_dir

    def keep_payload(self, run_dir: Path, spec: CommonSpec, payload: Payload) -> None:
        """A local copy of what was sent, for `workbench export` and `rerun`."""
        if run_dir.exists():
            shutil.rmtree(run_dir)
        private_dir(run_dir / "payload")
        assert isinstance(spec, CodeSpec)
        code, entry = payload_parts(spec, payload)
        target = run_dir / "payload" / entry
        target.write_bytes(code if isinstance(code, bytes) else code.encode())
        if payload.inputs is not None:
            (run_dir / "payload" / "inputs.pkl").write_bytes(payload.inputs)
        (run_dir / "spec.json").write_text(spec.model_dump_json(indent=2))
        make_private(run_dir)

    def adopt(self, obj: dict[str, Any], job: dict[str, Any]) -> None:
        """Make the Job own ``obj`` (its ConfigMap, Service), so the Job's TTL cleans both up."""
        owner = {
            "apiVersion": job.get("apiVersion", "batch/v1"),
            "kind": job.get("kind", "Job"),
            "name": job["metadata"]["name"],
            "uid": job["metadata"]["uid"],
        }
        with contextlib.suppress(WorkbenchError):  # not fatal: cancel and rm delete it too
            self.client.patch(
                obj.get("kind", "ConfigMap"),
                obj["metadata"]["name"],
                {"metadata": {"ownerReferences": [owner]}},
            )

    # -- state -----------------------------------------------------------------------------
    def pods(self, workload_id: str, *, fresh: bool = True) -> list[dict[str, Any]]:
        pods = self.tracker.objects("Pod", {ID_LABEL: workload_id}, fresh=fresh)
        return sorted(pods, key=lambda p: p.get("metadata", {}).get("creationTimestamp", ""))

    def job(self, workload_id: str, *, fresh: bool = True) -> dict[str, Any] | None:
        jobs = self.tracker.objects("Job", {ID_LABEL: workload_id}, fresh=fresh)
        return jobs[0] if jobs else None

    def refresh(self, workload: Workload) -> Workload:
        if workload.status not in ACTIVE:
            return workload
        if workload.kind == "dask":
            return self.dask.refresh(workload)
        if workload.kind == "train":
            return self.train.refresh(workload)
        if workload.kind == "notebook":
            return self.notebook.refresh(workload)
        if workload.kind == "serve":
            return self.serve.refresh(workload)
        return self.record(workload, self.observe_job(workload.id), lambda: self._last_line(workload.id))

    def observe_job(self, workload_id: str) -> Observed | None:
        """The state of a one-pod Job (a pod workload, a notebook run) and its pods."""
        observed = observe(self.job(workload_id), self.pods(workload_id))
        if observed is not None and observed.status == FAILED and observed.exit_code is None:
            # the Job's watch can be ahead of the pods' watch: read the pods once more so the
            # failure carries the container's exit code
            self.tracker.relist("Pod")
            observed = observe(self.job(workload_id), self.pods(workload_id))
        return observed

    def record(self, workload: Workload, observed: Observed | None, detail: Callable[[], str]) -> Workload:
        """Store what the cluster says; a failure's message gets ``detail()`` (a log line)."""
        if observed is None:
            if time.time() - workload.created < 5:
                return workload  # created a moment ago; the list may predate it
            status = CANCELLED if workload.cancel_requested else FAILED
            message = "cancelled" if workload.cancel_requested else "the Job was deleted outside workbench"
            self.store.finish(workload.id, status, exit_code=None, message=message)
            return self.store.get(workload.id)
        if observed.status in ACTIVE:
            fields: dict[str, Any] = {"status": observed.status, "message": observed.message}
            if observed.started:
                fields["started"] = observed.started
            if (workload.status, workload.message, workload.started) != (
                observed.status,
                observed.message,
                observed.started or workload.started,
            ):
                self.store.update(workload.id, only_if=ACTIVE, **fields)
            return self.store.get(workload.id)
        message = observed.message
        if observed.status == FAILED and observed.exit_code not in (None, 0):
            last = observed.reason or detail()
            message = f"{message}: {last}" if last else message
        self.store.update(workload.id, only_if=ACTIVE, started=observed.started or workload.started)
        self.store.finish(workload.id, observed.status, exit_code=observed.exit_code, message=message)
        return self.store.get(workload.id)

    def newest_pod_log(self, workload_id: str) -> str:
        """The log of the workload's newest pod ("" when there is none or it cannot be read)."""
        pods = self.pods(workload_id, fresh=False)
        if not pods:
            return ""
        try:
            return b"".join(self.client.logs(pods[-1]["metadata"]["name"])).decode("utf-8", "replace")
        except WorkbenchError:
            return ""

    def _last_line(self, workload_id: str) -> str:
        text = self.newest_pod_log(workload_id)
        lines = [
            line.strip() for line in self.marker(workload_id).feed(text + "\n").splitlines() if line.strip()
        ]
        return lines[-1][:300] if lines else ""

    def discover(self) -> None:
        """Add to the store the workloads found in the cluster by their labels."""
        from .discovery import discover

        discover(self)

    # -- output ----------------------------------------------------------------------------
    def logs(self, workload: Workload, *, follow: bool = False) -> Iterator[str]:
        if workload.kind == "dask":
            yield from self.dask.logs(workload, follow=follow)
        elif workload.kind == "train":
            yield from self.train.logs(workload, follow=follow)
        elif workload.kind == "notebook":
            yield from self.notebook.logs(workload, follow=follow)
        elif workload.kind == "serve":
            yield from self.serve.logs(workload, follow=follow)
        else:
            yield from self.pod_logs(workload, follow=follow)

    def pod_logs(self, workload: Workload, *, follow: bool = False) -> Iterator[str]:
        """The output of a one-pod Job's newest started pod; with ``follow``, until it ends."""
        from .job_logs import job_pod_logs

        yield from job_pod_logs(self, workload, follow=follow)

    def marker(self, workload_id: str) -> MarkerFilter:
        """A filter that hides the workload's sealed results line from what users see."""
        return MarkerFilter(self.store.results_key(workload_id))

    def results(self, workload: Workload, key: bytes) -> dict[str, Any]:
        if workload.status != SUCCEEDED or workload.kind not in ("pod", "train"):
            return {}
        if workload.kind == "train":
            logs = self.train.result_logs(workload)
        else:  # the newest pod is the one that succeeded
            logs = (
                b"".join(self.client.logs(pod["metadata"]["name"])).decode("utf-8", "replace")
                for pod in reversed(self.pods(workload.id))
            )
        return sealed_results(Path(workload.run_dir) / "results.sealed", logs, key)

    # -- stopping --------------------------------------------------------------------------
    def _delete_objects(self, workload: Workload) -> None:
        if workload.kind == "dask":
            self.dask.delete_objects(workload.id)
            return
        if workload.kind == "train":
            self.train.delete_objects(workload)
            return
        if workload.kind in ("notebook", "serve"):
            (self.notebook if workload.kind == "notebook" else self.serve).delete_objects(workload)
            return
        self.client.delete("Job", workload.id)
        self.client.delete("ConfigMap", f"{workload.id}-payload")
        self.client.delete("NetworkPolicy", workload.id)
        if workload.spec.get("get"):
            self.client.delete("Secret", results_secret_name(workload.id))

    def suspend(self, workload: Workload, suspended: bool) -> Workload:
        return self.notebook.suspend(workload, suspended)

    def schedule_runs(self, workload: Workload) -> list[dict[str, Any]]:
        return self.notebook.runs(workload)

    def cancel(self, workload: Workload) -> Workload:
        if workload.kind == "dask":
            return self.dask.cancel(workload)
        workload = self.refresh(workload)
        if workload.done:
            return workload
        self.store.update(workload.id, cancel_requested=1)
        self._delete_objects(workload)
        self.store.finish(workload.id, CANCELLED, exit_code=None, message="cancelled")
        return self.store.get(workload.id)

    def delete(self, workload: Workload) -> None:
        self._delete_objects(workload)

    # -- offline: manifests, RBAC; doctor and the sidebar ----------------------------------
    def manifests(self, workload_id: str, spec: CommonSpec, payload: Payload) -> list[dict[str, Any]]:
        """The objects a launch would create, for the settings alone (no cluster is contacted);
        a launched ``--operator kubeflow`` workload's as the kind it was made with."""
        kube = kube_settings(self.settings)
        with contextlib.suppress(NotFound):
            if made := self.store.get(workload_id).info.get("kubeflow_api"):
                kube = KubeSettings(**{**kube.__dict__, "kubeflow_api": made})
        return build_manifests(workload_id, spec, payload, self.settings, kube)

    def rbac(self, namespace: str | None, service_account: str, *, cluster: bool) -> list[dict[str, Any]]:
        from .rbac import rbac_manifests

        where = namespace or self.settings.kubernetes.namespace or "default"
        return rbac_manifests(where, service_account, cluster=cluster)

    @staticmethod
    def diagnose(settings: Settings, *, required: bool) -> list[Check]:
        from .doctor import diagnose

        return diagnose(settings, required=required)

    @staticmethod
    def probe(settings: Settings, timeout: float) -> dict[str, Any]:
        from .doctor import probe

        return probe(settings, timeout)

    # -- Dask ------------------------------------------------------------------------------
    def dask_address(self, workload: Workload, timeout: float = 60.0) -> Workload:
        return self.dask.address(workload, timeout)

    def scale(self, workload: Workload, workers: int) -> Workload:
        return self.dask.scale(workload, workers)

    def adapt(self, workload: Workload, minimum: int, maximum: int) -> Workload:
        return self.dask.adapt(workload, minimum, maximum)
