"""``--operator kubeflow`` on the Kubernetes backend: Kubeflow Trainer v2, or the v1 operator.

API discovery decides what a launch makes (:meth:`KubeflowTraining.prepare`): a TrainJob
(:mod:`.trainjob_manifests`) where the cluster serves ``trainjobs.trainer.kubeflow.org``, a
PyTorchJob where it serves only ``pytorchjobs.kubeflow.org``, and neither is one clear error
saying what to install; nothing is created on a refusal. The ClusterTrainingRuntime a TrainJob
names is read first: a missing one is refused with the runtimes there are (a 403 means it
cannot be checked, and the launch goes on). The API a workload was made with is kept in its
record (``info["kubeflow_api"]``).

A TrainJob's status conditions (``Suspended``, ``Complete``, ``Failed``; a ``Failed`` one with
reason ``DeadlineExceeded`` after ``activeDeadlineSeconds``) are read as a Job's
(:func:`trainjob_as_job`); its pods, which the runtime's JobSet names
``<trainjob>-node-0-<index>-<hash>``, carry the workload's labels and the Job's completion
index, so the Indexed Job's status, log and result code reads them unchanged. TrainJobs are
listed and watched by label (one list+watch, as Jobs are).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from ...errors import BackendUnavailable, NotFound, PermissionDenied, SpecError, WorkbenchError
from ...spec import TrainSpec
from ..base import INFO, OK, WARN, Check, Payload
from .client import Resource, register_resource
from .part import BackendPart
from .served import serves
from .settings import ID_LABEL
from .trainjob_manifests import (
    CLUSTER_RUNTIME_KIND,
    DEFAULT_RUNTIME,
    TRAINER_GROUP,
    TRAINER_VERSION,
)

if TYPE_CHECKING:
    from .backend import KubernetesBackend

#: the key of a workload's record that says which Kubeflow API made it
KUBEFLOW_API_INFO = "kubeflow_api"
TRAINER_RELEASE = "v2.3.0"
_TRAINER_REPO = "https://github.com/kubeflow/trainer.git/manifests/overlays"
TRAINER_INSTALL = f'kubectl apply --server-side -k "{_TRAINER_REPO}/manager?ref={TRAINER_RELEASE}"'
RUNTIMES_INSTALL = f'kubectl apply --server-side -k "{_TRAINER_REPO}/runtimes?ref={TRAINER_RELEASE}"'
TRAINJOB = Resource("TrainJob", TRAINER_GROUP, TRAINER_VERSION, "trainjobs", custom=True)
CLUSTER_RUNTIME = Resource(
    CLUSTER_RUNTIME_KIND,
    TRAINER_GROUP,
    TRAINER_VERSION,
    "clustertrainingruntimes",
    namespaced=False,
    custom=True,
)
PYTORCHJOBS = ("kubeflow.org", "v1", "pytorchjobs")
#: seconds a "Trainer v2 is not installed" answer is reused by discovery of workloads
_NOT_SERVED_TTL = 30.0


def kubeflow_missing() -> BackendUnavailable:
    return BackendUnavailable(
        "the Kubeflow training operator is not installed: the cluster serves neither "
        f"trainjobs.{TRAINER_GROUP} (Kubeflow Trainer v2) nor pytorchjobs.kubeflow.org (the v1 operator)",
        value="trainjobs",
        hint=f"install Kubeflow Trainer v2 with `{TRAINER_INSTALL}`, then its runtimes with "
        f"`{RUNTIMES_INSTALL}` (or the v1 training-operator), or drop --operator kubeflow to run "
        "an Indexed Job",
    )


def trainjob_as_job(obj: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A TrainJob in the shape :func:`~.status.observe` reads (its conditions as a Job's).

    It started when it was created, or when it was last resumed; a suspended one has not.
    """
    if obj is None:
        return None
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    suspended = bool((obj.get("spec") or {}).get("suspend"))
    conditions = [dict(c) for c in status.get("conditions") or [] if c.get("type") in ("Complete", "Failed")]
    complete = next((c for c in conditions if c["type"] == "Complete" and c.get("status") == "True"), None)
    resumed = next(
        (
            c
            for c in status.get("conditions") or []
            if c.get("type") == "Suspended" and c.get("status") == "False"
        ),
        None,
    )
    since = (resumed or {}).get("lastTransitionTime") or meta.get("creationTimestamp")
    started = None if suspended else since
    return {
        "metadata": meta,
        "spec": {"suspend": suspended},
        "status": {
            "startTime": started,
            "completionTime": (complete or {}).get("lastTransitionTime"),
            "conditions": conditions,
        },
    }


class KubeflowTraining(BackendPart):
    """Which Kubeflow training API the cluster serves (cached per backend), TrainJob reads,
    runtime checks. The train half of the backend holds one."""

    TRACKED = (TRAINJOB.kind,)

    def __init__(self, backend: KubernetesBackend) -> None:
        super().__init__(backend)
        self._trainer_v2 = False
        self._asked_at = -math.inf
        register_resource(TRAINJOB)
        register_resource(CLUSTER_RUNTIME)

    # -- which API ---------------------------------------------------------------------------------
    def trainer_v2(self, *, max_age: float = 0.0) -> bool:
        """Whether the cluster serves TrainJobs. A yes is kept for the backend's life; a no is
        asked again once it is older than ``max_age`` (an admin may install the Trainer)."""
        if not self._trainer_v2 and time.monotonic() - self._asked_at > max_age:
            self._trainer_v2 = serves(self.client, TRAINER_GROUP, TRAINER_VERSION, TRAINJOB.plural)
            self._asked_at = time.monotonic()
        return self._trainer_v2

    def api(self) -> Literal["TrainJob", "PyTorchJob"]:
        """``TrainJob`` or ``PyTorchJob``: what ``--operator kubeflow`` makes on this cluster.

        Raises:
            BackendUnavailable: neither is installed (what to install), or no answer.
        """
        if self.trainer_v2():
            return "TrainJob"
        if serves(self.client, *PYTORCHJOBS):
            return "PyTorchJob"
        raise kubeflow_missing()

    def prepare(
        self, workload_id: str, spec: TrainSpec, payload: Payload, docs: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The objects to create for ``--operator kubeflow`` on this cluster (``docs``, or the
        same workload built for the API the cluster has), after the checks that refuse it.

        Raises:
            BackendUnavailable: no Kubeflow training operator is installed.
            SpecError: ``--runtime`` without Trainer v2, or a runtime the cluster lacks.
        """
        api = self.api()
        if api == "PyTorchJob" and spec.runtime:
            raise SpecError(
                f"--runtime {spec.runtime} needs Kubeflow Trainer v2; this cluster has only the v1 "
                "training operator (PyTorchJob)",
                value=spec.runtime,
                hint=f"drop --runtime, or install Kubeflow Trainer v2: `{TRAINER_INSTALL}`",
            )
        if api == "TrainJob":
            self.check_runtime(spec.runtime or DEFAULT_RUNTIME)
        if docs[-1]["kind"] != api:
            from .build import build_manifests

            kube = dataclasses.replace(self.backend.kube, kubeflow_api=api)
            docs = build_manifests(workload_id, spec, payload, self.backend.settings, kube)
        return docs

    def runtimes(self) -> list[str]:
        """The ClusterTrainingRuntimes' names.

        Raises:
            PermissionDenied: not allowed to list them (a cluster-wide read).
            BackendUnavailable: the cluster does not serve them.
        """
        items, _ = self.client.list(CLUSTER_RUNTIME.kind)
        return sorted(str(item["metadata"]["name"]) for item in items)

    def check_runtime(self, name: str) -> None:
        """Refuse a ClusterTrainingRuntime the cluster lacks (a 403: cannot tell; go on).

        Raises:
            SpecError: it does not exist; the message lists those that do.
        """
        try:
            self.client.get(CLUSTER_RUNTIME.kind, name)
            return
        except PermissionDenied:
            return
        except NotFound:
            pass
        try:
            there = ", ".join(self.runtimes()) or "none"
        except WorkbenchError:
            there = "none that may be listed"
        raise SpecError(
            f"the cluster has no ClusterTrainingRuntime {name!r} (it has: {there})",
            value=name,
            hint=f"pick one with --runtime NAME, or install the Trainer's runtimes: `{RUNTIMES_INSTALL}`",
        )

    # -- TrainJobs ---------------------------------------------------------------------------------
    def trainjob(self, workload_id: str, *, fresh: bool = True) -> dict[str, Any] | None:
        """The workload's TrainJob; None when it is gone (or the Trainer with it)."""
        try:
            found = self.tracker.objects(TRAINJOB.kind, {ID_LABEL: workload_id}, fresh=fresh)
        except BackendUnavailable:
            return None
        return found[0] if found else None

    def job_of(self, workload_id: str, *, fresh: bool = True) -> dict[str, Any] | None:
        return trainjob_as_job(self.trainjob(workload_id, fresh=fresh))

    def tracked(self) -> list[dict[str, Any]]:
        """Every TrainJob of workbench in the namespace, when the cluster serves them (for
        finding workloads launched elsewhere; discovery is asked at most every 30 s)."""
        if not self.trainer_v2(max_age=_NOT_SERVED_TTL):
            return []
        return list(self.tracker.objects(TRAINJOB.kind))


def training_check(client: Any) -> Check:
    """`workbench doctor`'s line on the training operator the cluster has."""
    what = "training (--operator kubeflow)"
    try:
        if serves(client, TRAINER_GROUP, TRAINER_VERSION, TRAINJOB.plural):
            register_resource(CLUSTER_RUNTIME)
            try:
                items, _ = client.list(CLUSTER_RUNTIME.kind)
            except PermissionDenied:
                return Check(OK, what, "Kubeflow Trainer v2 (TrainJob; runtimes: not allowed to list them)")
            except WorkbenchError:
                items = []
            names = sorted(str(item["metadata"]["name"]) for item in items)
            if DEFAULT_RUNTIME not in names:
                detail = f"Kubeflow Trainer v2 (TrainJob; runtimes: {', '.join(names) or 'none'})"
                return Check(WARN, what, f"{detail} — no {DEFAULT_RUNTIME}: `{RUNTIMES_INSTALL}`")
            return Check(OK, what, f"Kubeflow Trainer v2 (TrainJob; runtimes: {', '.join(names)})")
        if serves(client, *PYTORCHJOBS):
            return Check(OK, what, "Kubeflow training operator v1 (PyTorchJob)")
    except WorkbenchError as exc:
        return Check(WARN, what, f"could not ask: {exc.one_line()}")
    return Check(INFO, what, f"none (Kubeflow Trainer v2 installs with `{TRAINER_INSTALL}`)")
