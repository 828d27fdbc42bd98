"""A stand-in for Kubeflow Trainer v2 (and the JobSet controller under it), for the API emulator.

    operator = install_trainer_operator(emulator)                  # Trainer v2 only
    operator = install_trainer_operator(emulator, pytorchjob=True)  # and the v1 PyTorchJob CRD

It registers ``trainjobs.trainer.kubeflow.org`` (namespaced), ``clustertrainingruntimes.
trainer.kubeflow.org`` (cluster-scoped) and ``jobsets.jobset.x-k8s.io``, installs the
ClusterTrainingRuntime ``torch-distributed`` (a JobSet template of one replicated job ``node``
with a container ``node``, and the torch ML policy), and on each pass of the emulator's control
loop reconciles, as far as workbench relies on it (Trainer v2.3):

- each TrainJob into a JobSet ``<name>`` (owned by the TrainJob) from its runtime's template:
  the ``node`` container gets the trainer's image, command, args, env (merged) and
  ``resourcesPerNode``, the torch plugin's ``PET_NNODES``, ``PET_NPROC_PER_NODE``,
  ``PET_NODE_RANK`` (the completion index), ``PET_MASTER_ADDR`` (``<name>-node-0-0.<name>``,
  which the process kubelet rewrites to 127.0.0.1 through the JobSet's Service) and
  ``PET_MASTER_PORT`` (a free local port per job: every emulated pod shares 127.0.0.1); then
  the runtime patches are applied (replicated jobs by name, the pod template as a strategic
  merge patch). Status: ``Created``; ``Suspended`` while ``spec.suspend`` (no pods) and false
  once resumed; the JobSet's ``Completed``/``Failed`` as ``Complete``/``Failed`` (reason and
  message kept); ``jobsStatus``; ``activeDeadlineSeconds`` (from creation or the last resume)
  fails it with reason ``DeadlineExceeded`` and deletes the JobSet, so its pods end;
- each JobSet into a headless Service ``<name>`` and, per replicated job, an Indexed batch/v1
  Job ``<name>-<job>-0`` (completions = parallelism = its pods, ``backoffLimit`` 0, the
  JobSet's labels, ``subdomain`` = the Service); the emulator's Job controller makes the pods
  (``<name>-node-0-<index>-<hash>``, hostname ``<name>-node-0-<index>``). The Job's
  ``Complete``/``Failed`` (with its reason and message) becomes the JobSet's
  ``Completed``/``Failed``; ``suspend`` is passed down; ``replicatedJobsStatus`` counts the Jobs.

Deleting a TrainJob removes its JobSet, Service, Jobs and pods through their ownerReferences
(the emulator's garbage collector). Admission webhooks, initializers, MPI and other ML
policies, gang scheduling, JobSet restarts and TTLs are not emulated.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

from .cluster import now, parse_time
from .controllers import JOBS
from .dask_operator import _owner, free_port
from .errors import ApiError
from .patching import strategic_merge_patch
from .pytorch_operator import install_pytorch_operator
from .resources import ResourceType
from .store import Obj

GROUP = "trainer.kubeflow.org"
VERSION = "v1alpha1"
TRAINJOBS = (GROUP, "trainjobs")
RUNTIMES = (GROUP, "clustertrainingruntimes")
JOBSET_GROUP = "jobset.x-k8s.io"
JOBSETS = (JOBSET_GROUP, "jobsets")
SERVICES = ("", "services")
NODE = "node"
DEFAULT_IMAGE = "pytorch/pytorch:2.7.1-cuda12.6-cudnn9-runtime"
JOBSET_LABEL = "jobset.sigs.k8s.io/jobset-name"
RJOB_LABEL = "jobset.sigs.k8s.io/replicatedjob-name"
JOB_INDEX_LABEL = "jobset.sigs.k8s.io/job-index"
ANCESTOR_LABEL = "trainer.kubeflow.org/trainjob-ancestor-step"
INDEX_PATH = "metadata.annotations['batch.kubernetes.io/job-completion-index']"


def runtime_document(name: str, image: str = DEFAULT_IMAGE) -> Obj:
    """A ClusterTrainingRuntime like Trainer's ``torch-distributed``."""
    container = {"name": NODE, "image": image, "command": ["/bin/bash", "-c", "env | grep PET_"]}
    job = {
        "name": NODE,
        "template": {
            "metadata": {"labels": {ANCESTOR_LABEL: "trainer"}},
            "spec": {"template": {"spec": {"containers": [container]}}},
        },
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ClusterTrainingRuntime",
        "metadata": {"name": name},
        "spec": {
            "mlPolicy": {"numNodes": 1, "torch": {"numProcPerNode": "auto"}},
            "template": {"spec": {"replicatedJobs": [job]}},
        },
    }


def _true(status: Obj, type_: str) -> Obj | None:
    return next(
        (c for c in status.get("conditions") or [] if c.get("type") == type_ and c.get("status") == "True"),
        None,
    )


def _condition(status: Obj, type_: str, value: bool, reason: str, message: str) -> None:
    """Set a metav1.Condition (its transition time moves only when its status does)."""
    conditions = status.setdefault("conditions", [])
    wanted = "True" if value else "False"
    for cond in conditions:
        if cond.get("type") == type_:
            if cond.get("status") != wanted:
                cond.update(status=wanted, lastTransitionTime=now())
            cond.update(reason=reason, message=message)
            return
    conditions.append(
        {"type": type_, "status": wanted, "reason": reason, "message": message, "lastTransitionTime": now()}
    )


def _upsert_env(container: Obj, entries: list[Obj]) -> None:
    names = {entry.get("name") for entry in entries}
    container["env"] = [e for e in container.get("env") or [] if e.get("name") not in names] + [
        copy.deepcopy(e) for e in entries
    ]


def _patched_jobs(jobs: list[Obj], patches: list[Obj]) -> list[Obj]:
    """The runtime's replicated jobs with the TrainJob's runtime patches applied (by job name)."""
    out = copy.deepcopy(jobs)
    for patch in patches:
        template = ((patch.get("trainingRuntimeSpec") or {}).get("template") or {}).get("spec") or {}
        for change in template.get("replicatedJobs") or []:
            target = next((job for job in out if job.get("name") == change.get("name")), None)
            if target is not None:
                target["template"] = strategic_merge_patch(
                    target.get("template") or {}, change.get("template")
                )
    return out


@dataclass
class TrainerOperator:
    """The controllers; ``ports`` maps a TrainJob's uid to its master port."""

    emulator: Any
    ports: dict[str, int] = field(default_factory=dict)

    def rt(self, key: tuple[str, str]) -> ResourceType:
        found = self.emulator.registry.by_key(key)
        assert found is not None, f"{key} is not served"
        return found

    def reconcile(self, _emulator: Any) -> None:
        store = self.emulator.store
        trainjobs = store.list(TRAINJOBS)
        live = {t["metadata"]["uid"] for t in trainjobs}
        self.ports = {uid: port for uid, port in self.ports.items() if uid in live}
        for kind, step in ((TRAINJOBS, self._trainjob), (JOBSETS, self._jobset)):
            for obj in store.list(kind):
                if obj["metadata"].get("deletionTimestamp"):
                    continue
                try:
                    step(obj)
                except ApiError:  # a dependent is being deleted or raced: the next pass tries again
                    continue

    # -- TrainJob -------------------------------------------------------------------------------
    def _trainjob(self, job: Obj) -> None:
        meta, spec = job["metadata"], job.get("spec") or {}
        status = copy.deepcopy(job.get("status") or {})
        if _true(status, "Complete") or _true(status, "Failed"):
            return
        store, namespace = self.emulator.store, meta["namespace"]
        jobset = store.get(JOBSETS, namespace, meta["name"])
        suspended = bool(spec.get("suspend"))
        if suspended:
            _condition(status, "Suspended", True, "Suspended", "TrainJob is suspended")
        elif any(c.get("type") == "Suspended" for c in status.get("conditions") or []):
            _condition(status, "Suspended", False, "Resumed", "TrainJob is resumed")
        if self._past_deadline(job, status):
            _condition(status, "Failed", True, "DeadlineExceeded", "TrainJob exceeded its active deadline")
            if jobset is not None:
                self.emulator.cluster.delete(
                    self.rt(JOBSETS), namespace, meta["name"], propagation="Background"
                )
            self._status(job, status)
            return
        if jobset is None:
            ref = spec.get("runtimeRef") or {}
            runtime = store.get(RUNTIMES, "", str(ref.get("name")))
            if runtime is None:
                message = f"ClusterTrainingRuntime {ref.get('name')!r} was not found"
                _condition(status, "Failed", True, "TrainingRuntimeNotSupported", message)
                self._status(job, status)
                return
            jobset = self.emulator.cluster.create(self.rt(JOBSETS), namespace, self._jobset_of(job, runtime))
            _condition(status, "Created", True, "JobsCreated", "Succeeded to create Jobs")
        elif bool((jobset.get("spec") or {}).get("suspend")) != suspended:
            changed = copy.deepcopy(jobset)
            changed["spec"]["suspend"] = suspended
            self.emulator.cluster.write(self.rt(JOBSETS), changed)
        jobset_status = jobset.get("status") or {}
        for source, target in (("Completed", "Complete"), ("Failed", "Failed")):
            cond = _true(jobset_status, source)
            if cond is not None:
                _condition(status, target, True, str(cond.get("reason")), str(cond.get("message")))
        status["jobsStatus"] = [
            {key: int(entry.get(key, 0)) for key in ("active", "failed", "ready", "succeeded", "suspended")}
            | {"name": entry["name"]}
            for entry in jobset_status.get("replicatedJobsStatus") or []
        ]
        self._status(job, status)

    def _past_deadline(self, job: Obj, status: Obj) -> bool:
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        if not deadline or (job.get("spec") or {}).get("suspend"):
            return False
        resumed = next(
            (
                c
                for c in status.get("conditions") or []
                if c["type"] == "Suspended" and c["status"] == "False"
            ),
            None,
        )
        start = parse_time((resumed or {}).get("lastTransitionTime") or job["metadata"]["creationTimestamp"])
        return start is not None and time.time() - start >= float(deadline)

    def _jobset_of(self, job: Obj, runtime: Obj) -> Obj:
        meta, spec = job["metadata"], job.get("spec") or {}
        name, trainer = meta["name"], spec.get("trainer") or {}
        policy = (runtime.get("spec") or {}).get("mlPolicy") or {}
        nodes = int(trainer.get("numNodes") or policy.get("numNodes") or 1)
        procs = trainer.get("numProcPerNode") or (policy.get("torch") or {}).get("numProcPerNode") or "auto"
        port = self.ports.setdefault(meta["uid"], free_port())
        template = (runtime.get("spec") or {}).get("template") or {}
        replicated = copy.deepcopy((template.get("spec") or {}).get("replicatedJobs") or [])
        for rjob in replicated:
            pod = rjob["template"]["spec"].setdefault("template", {}).setdefault("spec", {})
            if (rjob["template"].get("metadata") or {}).get("labels", {}).get(ANCESTOR_LABEL) != "trainer":
                continue
            rjob["template"]["spec"].update(parallelism=nodes, completions=nodes)
            for container in pod.get("containers") or []:
                if container.get("name") != NODE:
                    continue
                for key in ("image", "command", "args"):
                    if key in trainer:
                        container[key] = copy.deepcopy(trainer[key])
                if "resourcesPerNode" in trainer:
                    container["resources"] = copy.deepcopy(trainer["resourcesPerNode"])
                _upsert_env(container, trainer.get("env") or [])
                _upsert_env(
                    container,
                    [
                        {"name": "PET_NNODES", "value": str(nodes)},
                        {"name": "PET_NPROC_PER_NODE", "value": str(procs)},
                        {"name": "PET_NODE_RANK", "valueFrom": {"fieldRef": {"fieldPath": INDEX_PATH}}},
                        {"name": "PET_MASTER_ADDR", "value": f"{name}-{NODE}-0-0.{name}"},
                        {"name": "PET_MASTER_PORT", "value": str(port)},
                    ],
                )
        return {
            "apiVersion": f"{JOBSET_GROUP}/v1alpha2",
            "kind": "JobSet",
            "metadata": {
                "name": name,
                "labels": {"trainer.kubeflow.org/trainjob-name": name},
                "ownerReferences": [_owner(job)],
            },
            "spec": {
                "replicatedJobs": _patched_jobs(replicated, spec.get("runtimePatches") or []),
                "network": {"enableDNSHostnames": True, "subdomain": name, "publishNotReadyAddresses": True},
                "suspend": bool(spec.get("suspend")),
                "startupPolicy": {"startupPolicyOrder": "AnyOrder"},
            },
        }

    # -- JobSet ---------------------------------------------------------------------------------
    def _jobset(self, jobset: Obj) -> None:
        meta, spec = jobset["metadata"], jobset.get("spec") or {}
        store, cluster, namespace, name = (
            self.emulator.store,
            self.emulator.cluster,
            meta["namespace"],
            meta["name"],
        )
        status = copy.deepcopy(jobset.get("status") or {})
        if store.get(SERVICES, namespace, name) is None:  # before the pods: their DNS names resolve
            owner = next(iter(meta.get("ownerReferences") or []), {})
            port = self.ports.get(str(owner.get("uid")), 29500)  # its TrainJob's master port
            body = {
                "metadata": {
                    "name": name,
                    "labels": {JOBSET_LABEL: name},
                    "ownerReferences": [_owner(jobset)],
                },
                "spec": {
                    "clusterIP": "None",
                    "publishNotReadyAddresses": True,
                    "selector": {JOBSET_LABEL: name},
                    "ports": [{"name": "trainer", "port": port, "targetPort": port, "protocol": "TCP"}],
                },
            }
            cluster.create(self.rt(SERVICES), namespace, body)
        counts = []
        for rjob in spec.get("replicatedJobs") or []:
            job_name = f"{name}-{rjob['name']}-0"
            child = store.get(JOBS, namespace, job_name)
            if child is None and not (_true(status, "Completed") or _true(status, "Failed")):
                child = cluster.create(self.rt(JOBS), namespace, self._job_of(jobset, rjob, job_name))
            if child is None:
                continue
            if bool((child.get("spec") or {}).get("suspend")) != bool(spec.get("suspend")):
                changed = copy.deepcopy(child)
                changed["spec"]["suspend"] = bool(spec.get("suspend"))
                cluster.write(self.rt(JOBS), changed)
            child_status = child.get("status") or {}
            done = {t: _true(child_status, t) for t in ("Complete", "Failed")}
            pods = int(child["spec"].get("parallelism", 1))
            counts.append(
                {
                    "name": rjob["name"],
                    "ready": int(int(child_status.get("ready") or 0) >= pods),
                    "succeeded": int(done["Complete"] is not None),
                    "failed": int(done["Failed"] is not None),
                    "active": int(int(child_status.get("active") or 0) > 0),
                    "suspended": int(bool(spec.get("suspend"))),
                }
            )
            if done["Failed"] is not None:
                failed = done["Failed"]
                _condition(status, "Failed", True, str(failed.get("reason")), str(failed.get("message")))
        if counts and all(c["succeeded"] for c in counts) and not _true(status, "Failed"):
            _condition(status, "Completed", True, "AllJobsCompleted", "jobset completed successfully")
        status["replicatedJobsStatus"] = counts
        if status != (jobset.get("status") or {}):
            changed = copy.deepcopy(jobset)
            changed["status"] = status
            cluster.write(self.rt(JOBSETS), changed)

    def _job_of(self, jobset: Obj, rjob: Obj, job_name: str) -> Obj:
        name = jobset["metadata"]["name"]
        template = copy.deepcopy(rjob.get("template") or {})
        labels = {
            JOBSET_LABEL: name,
            RJOB_LABEL: rjob["name"],
            JOB_INDEX_LABEL: "0",
            **((template.get("metadata") or {}).get("labels") or {}),
        }
        job_spec = template.get("spec") or {}
        pod = job_spec.setdefault("template", {})
        pod_meta = pod.setdefault("metadata", {})
        pod_meta["labels"] = {**(pod_meta.get("labels") or {}), JOBSET_LABEL: name, RJOB_LABEL: rjob["name"]}
        pod_spec = pod.setdefault("spec", {})
        pod_spec.setdefault("restartPolicy", "Never")
        pod_spec["subdomain"] = name
        job_spec.update(completionMode="Indexed", backoffLimit=0, suspend=bool(jobset["spec"].get("suspend")))
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": job_name, "labels": labels, "ownerReferences": [_owner(jobset)]},
            "spec": job_spec,
        }

    def _status(self, job: Obj, status: Obj) -> None:
        if status != (job.get("status") or {}):
            changed = copy.deepcopy(job)
            changed["status"] = status
            self.emulator.cluster.write(self.rt(TRAINJOBS), changed)


def add_runtime(emulator: Any, name: str, image: str = DEFAULT_IMAGE) -> Obj:
    """Install another ClusterTrainingRuntime (a copy of torch-distributed under ``name``)."""
    rt = emulator.registry.by_key(RUNTIMES)
    assert rt is not None, "install_trainer_operator first"
    return dict(emulator.call(lambda: emulator.cluster.create(rt, "", runtime_document(name, image))))


def install_trainer_operator(emulator: Any, *, pytorchjob: bool = False) -> TrainerOperator:
    """Register Kubeflow Trainer v2's CRDs (and JobSet's) on ``emulator``, install the
    ``torch-distributed`` runtime and run the stand-in controllers on its loop; with
    ``pytorchjob`` the v1 training operator's stand-in too (a cluster with both)."""
    emulator.add_crd(GROUP, VERSION, "trainjobs", "TrainJob")
    emulator.add_crd(GROUP, VERSION, "clustertrainingruntimes", "ClusterTrainingRuntime", namespaced=False)
    emulator.add_crd(JOBSET_GROUP, "v1alpha2", "jobsets", "JobSet")
    add_runtime(emulator, "torch-distributed")
    operator = TrainerOperator(emulator)
    emulator.add_controller(operator.reconcile)
    if pytorchjob:
        install_pytorch_operator(emulator)
    return operator
