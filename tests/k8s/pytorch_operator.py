"""A stand-in for the PyTorchJob controller of the Kubeflow training operator, for the API emulator.

    operator = install_pytorch_operator(emulator)   # the CRD, plus a controller on the loop

It registers ``pytorchjobs.kubeflow.org`` (v1) and reconciles every PyTorchJob on each pass of
the emulator's control loop, as the operator (v1.9) does in a cluster, as far as workbench
relies on it:

- for each replica spec (``Master``, ``Worker``) and index, a pod ``<job>-<type>-<index>``
  (type lower-cased) from the replica's template: its labels kept, the operator's own added
  (``training.kubeflow.org/job-name``, ``replica-type``, ``replica-index``, ``operator-name``,
  ``job-role: master`` on the master), the replica's ``restartPolicy`` on the pod, and an
  ownerReference to the job; plus a headless Service of the same name selecting that pod;
- on the container named ``pytorch``: ``PET_MASTER_ADDR``/``MASTER_ADDR`` (``<job>-master-0``,
  which the process kubelet rewrites to 127.0.0.1), ``PET_MASTER_PORT``/``MASTER_PORT``,
  ``PET_NNODES`` and ``WORLD_SIZE`` (replicas, times ``nprocPerNode`` for the world size),
  ``PET_NODE_RANK`` and ``RANK`` (master 0, worker i+1), ``PET_NPROC_PER_NODE`` and
  ``PYTHONUNBUFFERED``. The master port is the master container's ``pytorchjob-port``
  (the operator's defaulting gives 23456); every emulated pod shares 127.0.0.1, so each job
  gets a free local port instead, which is also its Services' port;
- status: ``Created`` at once; ``startTime`` when the pods are made; ``Running`` while the
  master runs; ``Succeeded`` (with ``completionTime``) once the master succeeded; ``Failed``
  once a pod failed with ``restartPolicy: Never``, or the restarts of the OnFailure/Always
  replicas' running pods reach ``runPolicy.backoffLimit`` (any restart, for a limit of 0);
  ``replicaStatuses`` counts each type's active, succeeded and failed pods. A finished job's
  pods go as ``runPolicy.cleanPodPolicy`` says (``None``, the operator's default, keeps them;
  ``Running`` deletes the running and pending ones; ``All`` every one), and
  ``ttlSecondsAfterFinished`` deletes the job itself;
- ``runPolicy.suspend``: no pods while true (a ``Suspended`` condition);
- ``runPolicy.activeDeadlineSeconds`` (from ``startTime``): ``Failed`` with the operator's
  reason ``PyTorchJobFailed`` and message "Job <name> has failed because it was active longer
  than specified deadline"; the pods then go as ``cleanPodPolicy`` says.

Deleting the PyTorchJob removes its pods and Services through their ownerReferences (the
emulator's garbage collector). ``elasticPolicy``, the ``ExitCode`` restart policy and gang
scheduling are not emulated.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

from .cluster import PODS, now, parse_time
from .dask_operator import _owned_by, _owner, free_port
from .errors import ApiError
from .resources import ResourceType
from .store import Obj

GROUP = "kubeflow.org"
VERSION = "v1"
PLURAL = "pytorchjobs"
KIND = "PyTorchJob"
JOBS = (GROUP, PLURAL)
SERVICES = ("", "services")
CONTAINER = "pytorch"
JOB_NAME_LABEL = "training.kubeflow.org/job-name"
TYPE_LABEL = "training.kubeflow.org/replica-type"
INDEX_LABEL = "training.kubeflow.org/replica-index"
OPERATOR_LABEL = "training.kubeflow.org/operator-name"
ROLE_LABEL = "training.kubeflow.org/job-role"
OPERATOR_NAME = "pytorchjob-controller"
#: replica types in the order the operator ranks them (Master first)
TYPES = ("Master", "Worker")


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def _restarts(pod: Obj) -> int:
    return sum(
        int(s.get("restartCount", 0)) for s in (pod.get("status") or {}).get("containerStatuses") or []
    )


def _is(status: Obj, type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True" for c in status.get("conditions") or [])


def _set_condition(status: Obj, type_: str, reason: str, message: str) -> None:
    """Add (or refresh) a true condition; Running turns false once the job finished, as the operator does."""
    conditions = status.setdefault("conditions", [])
    stamp = now()
    for cond in conditions:
        if cond.get("type") == type_:
            if (cond.get("status"), cond.get("reason"), cond.get("message")) != ("True", reason, message):
                if cond.get("status") != "True":
                    cond.update(status="True", lastTransitionTime=stamp)
                cond.update(reason=reason, message=message, lastUpdateTime=stamp)
            break
    else:
        conditions.append(
            {
                "type": type_,
                "status": "True",
                "reason": reason,
                "message": message,
                "lastUpdateTime": stamp,
                "lastTransitionTime": stamp,
            }
        )
    if type_ in ("Succeeded", "Failed"):
        for cond in conditions:
            if cond.get("type") == "Running" and cond.get("status") == "True":
                cond.update(status="False", lastTransitionTime=stamp)


def _replicas(spec: Obj) -> list[tuple[str, Obj]]:
    specs = spec.get("pytorchReplicaSpecs") or {}
    return [(rtype, specs[rtype]) for rtype in TYPES if rtype in specs]


@dataclass
class PyTorchOperator:
    """The controller; ``ports`` maps a job's uid to its master port."""

    emulator: Any
    ports: dict[str, int] = field(default_factory=dict)
    finished_at: dict[str, float] = field(default_factory=dict)

    def rt(self, group: str, plural: str) -> ResourceType:
        found = self.emulator.registry.by_key((group, plural))
        assert found is not None, f"{plural} is not served"
        return found

    def reconcile(self, _emulator: Any) -> None:
        jobs = self.emulator.store.list(JOBS)
        live = {j["metadata"]["uid"] for j in jobs}
        self.ports = {uid: p for uid, p in self.ports.items() if uid in live}
        self.finished_at = {uid: t for uid, t in self.finished_at.items() if uid in live}
        for job in jobs:
            if job["metadata"].get("deletionTimestamp"):
                continue
            try:
                self._job(job)
            except ApiError:  # a dependent is being deleted or raced; the next pass tries again
                continue

    # -- one PyTorchJob ------------------------------------------------------------------------
    def _job(self, job: Obj) -> None:
        meta, spec = job["metadata"], job.get("spec") or {}
        namespace, uid = meta["namespace"], meta["uid"]
        run_policy = spec.get("runPolicy") or {}
        status = copy.deepcopy(job.get("status") or {})
        if not status.get("conditions"):
            _set_condition(status, "Created", "PyTorchJobCreated", f"PyTorchJob {meta['name']} is created.")
        pods = [p for p in self.emulator.store.list(PODS, namespace) if _owned_by(p, job)]
        if _is(status, "Succeeded") or _is(status, "Failed"):
            self._finished(job, status, pods, run_policy)
            return
        if run_policy.get("suspend"):
            _set_condition(
                status, "Suspended", "PyTorchJobSuspended", f"PyTorchJob {meta['name']} is suspended."
            )
            self._status(job, status)
            return
        if uid not in self.ports:
            self.ports[uid] = free_port()
        status.setdefault("startTime", now())
        self._create_missing(job, pods)
        self._update(job, status, pods, run_policy)
        self._status(job, status)

    def _create_missing(self, job: Obj, pods: list[Obj]) -> None:
        meta, spec = job["metadata"], job.get("spec") or {}
        store, api = self.emulator.store, self.emulator.cluster
        namespace, name = meta["namespace"], meta["name"]
        replicas = _replicas(spec)
        total = sum(int(r.get("replicas", 1)) for _, r in replicas)
        nproc = str(spec.get("nprocPerNode") or "auto")
        per_node = int(nproc) if nproc.isdigit() else 1
        port = self.ports[meta["uid"]]
        master = f"{name}-master-0"
        have = {p["metadata"]["name"] for p in pods}
        for rtype, replica in replicas:
            kind = rtype.lower()
            for index in range(int(replica.get("replicas", 1))):
                pod_name = f"{name}-{kind}-{index}"
                labels = {
                    JOB_NAME_LABEL: name,
                    OPERATOR_LABEL: OPERATOR_NAME,
                    TYPE_LABEL: kind,
                    INDEX_LABEL: str(index),
                }
                if rtype == "Master":
                    labels[ROLE_LABEL] = "master"
                if store.get(SERVICES, namespace, pod_name) is None:  # before the pod: its DNS name resolves
                    self._service(job, pod_name, labels, port)
                if pod_name in have:
                    continue
                rank = index + 1 if rtype == "Worker" and "Master" in dict(replicas) else index
                env = {
                    "PYTHONUNBUFFERED": "1",
                    "MASTER_PORT": str(port),
                    "PET_MASTER_PORT": str(port),
                    "MASTER_ADDR": master,
                    "PET_MASTER_ADDR": master,
                    "WORLD_SIZE": str(total * per_node),
                    "RANK": str(rank),
                    "PET_NNODES": str(total),
                    "PET_NODE_RANK": str(rank),
                    "PET_NPROC_PER_NODE": nproc,
                }
                template = copy.deepcopy(replica.get("template") or {})
                pod_spec = template.get("spec") or {}
                pod_spec["restartPolicy"] = replica.get("restartPolicy") or "Never"
                for container in pod_spec.get("containers") or []:
                    if container.get("name") == CONTAINER:
                        kept = [e for e in container.get("env") or [] if e.get("name") not in env]
                        container["env"] = [*kept, *({"name": k, "value": v} for k, v in env.items())]
                tmeta = template.get("metadata") or {}
                pod = {
                    "metadata": {
                        "name": pod_name,
                        "labels": {**(tmeta.get("labels") or {}), **labels},
                        "annotations": dict(tmeta.get("annotations") or {}),
                        "ownerReferences": [_owner(job)],
                    },
                    "spec": pod_spec,
                }
                api.create(self.rt("", "pods"), namespace, pod)

    def _service(self, job: Obj, name: str, selector: dict[str, str], port: int) -> None:
        body = {
            "metadata": {"name": name, "labels": dict(selector), "ownerReferences": [_owner(job)]},
            "spec": {
                "clusterIP": "None",
                "selector": dict(selector),
                "ports": [{"name": "pytorchjob-port", "port": port, "targetPort": port, "protocol": "TCP"}],
            },
        }
        self.emulator.cluster.create(self.rt("", "services"), job["metadata"]["namespace"], body)

    def _update(self, job: Obj, status: Obj, pods: list[Obj], run_policy: Obj) -> None:
        meta, spec = job["metadata"], job.get("spec") or {}
        name = meta["name"]
        counts: dict[str, Obj] = {}
        restarts = 0
        failed_type = ""
        for rtype, replica in _replicas(spec):
            mine = [p for p in pods if (p["metadata"].get("labels") or {}).get(TYPE_LABEL) == rtype.lower()]
            active = sum(1 for p in mine if _phase(p) in ("Running", "Pending"))
            succeeded = sum(1 for p in mine if _phase(p) == "Succeeded")
            failed = sum(1 for p in mine if _phase(p) == "Failed")
            counts[rtype] = {
                "active": active,
                "succeeded": succeeded,
                "failed": failed,
                "selector": f"{JOB_NAME_LABEL}={name},{OPERATOR_LABEL}={OPERATOR_NAME},"
                f"{TYPE_LABEL}={rtype.lower()}",
            }
            if (replica.get("restartPolicy") or "Never") in ("OnFailure", "Always"):
                restarts += sum(_restarts(p) for p in mine if _phase(p) == "Running")
            if failed and not failed_type:
                failed_type = f"{failed} {rtype} replica(s) failed"
            if rtype == "Master":
                if any(_phase(p) == "Running" for p in mine):
                    _set_condition(status, "Running", "PyTorchJobRunning", f"PyTorchJob {name} is running.")
                if succeeded >= int(replica.get("replicas", 1)):
                    _set_condition(
                        status,
                        "Succeeded",
                        "PyTorchJobSucceeded",
                        f"PyTorchJob {meta['namespace']}/{name} successfully completed.",
                    )
        status["replicaStatuses"] = counts
        limit = run_policy.get("backoffLimit")
        if _is(status, "Succeeded"):
            pass
        elif failed_type:
            _set_condition(
                status, "Failed", "PyTorchJobFailed", f"PyTorchJob {name} is failed because {failed_type}."
            )
        elif self._past_deadline(status, run_policy):  # the operator's words (reason: PyTorchJobFailed)
            message = f"Job {name} has failed because it was active longer than specified deadline"
            _set_condition(status, "Failed", "PyTorchJobFailed", message)
        elif limit is not None and restarts > 0 and restarts >= int(limit):
            _set_condition(
                status,
                "Failed",
                "PyTorchJobFailed",
                f"PyTorchJob {name} has failed because it has reached the specified backoff limit",
            )
        if _is(status, "Succeeded") or _is(status, "Failed"):
            status.setdefault("completionTime", now())

    @staticmethod
    def _past_deadline(status: Obj, run_policy: Obj) -> bool:
        deadline, started = run_policy.get("activeDeadlineSeconds"), parse_time(status.get("startTime"))
        return deadline is not None and started is not None and time.time() - started >= float(deadline)

    def _finished(self, job: Obj, status: Obj, pods: list[Obj], run_policy: Obj) -> None:
        uid = job["metadata"]["uid"]
        self.finished_at.setdefault(uid, time.time())
        policy = run_policy.get("cleanPodPolicy") or "None"
        for pod in pods:
            if pod["metadata"].get("deletionTimestamp"):
                continue
            if policy == "All" or (policy == "Running" and _phase(pod) in ("Running", "Pending")):
                meta = pod["metadata"]
                self.emulator.cluster.delete(self.rt("", "pods"), meta["namespace"], meta["name"])
                if self.emulator.store.get(SERVICES, meta["namespace"], meta["name"]) is not None:
                    self.emulator.cluster.delete(self.rt("", "services"), meta["namespace"], meta["name"])
        ttl = run_policy.get("ttlSecondsAfterFinished")
        if ttl is not None and time.time() - self.finished_at[uid] >= float(ttl):
            meta = job["metadata"]
            self.emulator.cluster.delete(
                self.rt(*JOBS), meta["namespace"], meta["name"], propagation="Background"
            )

    def _status(self, job: Obj, status: Obj) -> None:
        if status != (job.get("status") or {}):
            changed = copy.deepcopy(job)
            changed["status"] = status
            self.emulator.cluster.write(self.rt(*JOBS), changed)


def install_pytorch_operator(emulator: Any) -> PyTorchOperator:
    """Register the PyTorchJob CRD on ``emulator`` and run the stand-in controller on its loop."""
    emulator.add_crd(GROUP, VERSION, PLURAL, KIND)
    operator = PyTorchOperator(emulator)
    emulator.add_controller(operator.reconcile)
    return operator
