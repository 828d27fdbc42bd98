"""The Job controller (with TTL-after-finished): Job → pods, retries, completion, failure."""

from __future__ import annotations

import copy
import time
from typing import Any

from .cluster import PODS, Cluster, now, parse_time
from .errors import ApiError
from .resources import ResourceType
from .store import Obj

JOBS = ("batch", "jobs")
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
TERMINAL = ("Succeeded", "Failed")


def _controller_uid(obj: Obj) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _index(pod: Obj) -> int | None:
    value = (pod["metadata"].get("annotations") or {}).get(INDEX_KEY)
    return int(value) if value is not None and str(value).isdigit() else None


def _ranges(indexes: set[int]) -> str:
    out: list[str] = []
    for i in sorted(indexes):
        if out and out[-1].split("-")[-1] == str(i - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{i}"
        else:
            out.append(str(i))
    return ",".join(out)


def _failure_action(spec: Obj, pod: Obj) -> tuple[str, str]:
    """(action, message) of the first podFailurePolicy rule that matches a failed pod."""
    status = pod.get("status") or {}
    ident = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
    for number, rule in enumerate((spec.get("podFailurePolicy") or {}).get("rules") or []):
        codes = rule.get("onExitCodes")
        if codes:
            for cs in status.get("containerStatuses") or []:
                term = (cs.get("state") or {}).get("terminated")
                if (
                    not term
                    or term.get("exitCode") == 0
                    or codes.get("containerName") not in (None, cs.get("name"))
                ):
                    continue
                inside = term.get("exitCode") in (codes.get("values") or [])
                if inside == (codes.get("operator", "In") == "In"):
                    return rule.get("action", "Count"), (
                        f"Container {cs.get('name')} for pod {ident} failed with exit code "
                        f"{term.get('exitCode')} "
                        f"matching {rule.get('action')} rule at index {number}"
                    )
        for wanted in rule.get("onPodConditions") or []:
            for cond in status.get("conditions") or []:
                if cond.get("type") == wanted.get("type") and cond.get("status") == wanted.get(
                    "status", "True"
                ):
                    return rule.get("action", "Count"), (
                        f"Pod {ident} has condition {cond.get('type')} matching {rule.get('action')} "
                        f"rule at index {number}"
                    )
    return "Count", ""


class JobController:
    def __init__(self, cluster: Cluster, jobs_rt: ResourceType, pods_rt: ResourceType) -> None:
        self.cluster = cluster
        self.jobs_rt = jobs_rt
        self.pods_rt = pods_rt
        #: job uid → pod uid → (phase, index, counted) for every finished pod seen
        self.seen: dict[str, dict[str, tuple[str, int | None, bool]]] = {}
        self.finished_at: dict[str, float] = {}
        self.started_at: dict[str, float] = {}

    def sync(self) -> None:
        jobs = self.cluster.store.list(JOBS)
        live = {j["metadata"]["uid"] for j in jobs}
        self.seen = {k: v for k, v in self.seen.items() if k in live}
        self.started_at = {k: v for k, v in self.started_at.items() if k in live}
        for job in jobs:
            try:
                self._sync(job)
            except ApiError:
                continue

    # helpers -----------------------------------------------------------------------------

    def _condition(self, status: Obj, type_: str, value: bool, reason: str, message: str) -> None:
        conditions = status.setdefault("conditions", [])
        stamp = now()
        wanted = "True" if value else "False"
        for cond in conditions:
            if cond["type"] == type_:
                # as the Job controller does: a condition that says the same is left as it is (a
                # probe time bumped on every pass changed every suspended Job once a second)
                if (cond["status"], cond.get("reason"), cond.get("message")) != (wanted, reason, message):
                    if cond["status"] != wanted:
                        cond["lastTransitionTime"] = stamp
                    cond.update(status=wanted, reason=reason, message=message, lastProbeTime=stamp)
                return
        conditions.append(
            {
                "type": type_,
                "status": wanted,
                "reason": reason,
                "message": message,
                "lastProbeTime": stamp,
                "lastTransitionTime": stamp,
            }
        )

    def _delete_pods(self, pods: list[Obj]) -> None:
        for pod in pods:
            meta = pod["metadata"]
            try:
                self.cluster.delete(self.pods_rt, meta["namespace"], meta["name"], propagation="Background")
            except ApiError:
                continue

    def _create_pod(self, job: Obj, index: int | None) -> None:
        meta, spec = job["metadata"], job.get("spec") or {}
        template = copy.deepcopy(spec.get("template") or {})
        tmeta = template.get("metadata") or {}
        labels = dict(tmeta.get("labels") or {})
        labels.update(
            {
                "controller-uid": meta["uid"],
                "batch.kubernetes.io/controller-uid": meta["uid"],
                "job-name": meta["name"],
                "batch.kubernetes.io/job-name": meta["name"],
            }
        )
        annotations = dict(tmeta.get("annotations") or {})
        pod_spec = template.get("spec") or {}
        generate = f"{meta['name']}-"
        if index is not None:
            generate = f"{meta['name']}-{index}-"
            labels[INDEX_KEY] = str(index)
            annotations[INDEX_KEY] = str(index)
            pod_spec["hostname"] = f"{meta['name']}-{index}"
            ref = {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_KEY}']"}}
            for container in [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]:
                env = [e for e in container.get("env") or [] if e.get("name") != "JOB_COMPLETION_INDEX"]
                container["env"] = [{"name": "JOB_COMPLETION_INDEX", "valueFrom": ref}, *env]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": generate,
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": pod_spec,
        }
        try:
            created = self.cluster.create(self.pods_rt, meta["namespace"], pod)
        except ApiError as exc:
            self.cluster.event(
                job,
                "FailedCreate",
                f"Error creating: {exc.message}",
                type_="Warning",
                component="job-controller",
            )
            return
        self.cluster.event(
            job, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}", component="job-controller"
        )

    def _finish(self, job: Obj, status: Obj, active: list[Obj], ok: bool, reason: str, message: str) -> None:
        if ok:
            self._condition(status, "SuccessCriteriaMet", True, reason, message)
            self._condition(status, "Complete", True, reason, message)
            status["completionTime"] = now()
            self.cluster.event(job, "Completed", "Job completed", component="job-controller")
        else:
            self._condition(status, "FailureTarget", True, reason, message)
            self._condition(status, "Failed", True, reason, message)
            self.cluster.event(job, reason, message, type_="Warning", component="job-controller")
        self.finished_at[job["metadata"]["uid"]] = time.time()
        self._delete_pods(active)

    # the reconcile -----------------------------------------------------------------------

    def _sync(self, job: Obj) -> None:
        meta, spec = job["metadata"], job.get("spec") or {}
        status = copy.deepcopy(job.get("status") or {})
        finished = any(
            c["type"] in ("Complete", "Failed") and c["status"] == "True"
            for c in status.get("conditions") or []
        )
        if finished:
            self._ttl(job, status)
            return
        uid = meta["uid"]
        pods = [p for p in self.cluster.store.list(PODS, meta["namespace"]) if _controller_uid(p) == uid]
        seen = self.seen.setdefault(uid, {})
        fail_job: tuple[str, str] | None = None
        for pod in pods:
            phase = (pod.get("status") or {}).get("phase")
            if phase in TERMINAL and pod["metadata"]["uid"] not in seen:
                action, message = ("Count", "") if phase == "Succeeded" else _failure_action(spec, pod)
                seen[pod["metadata"]["uid"]] = (phase, _index(pod), action != "Ignore")
                if action == "FailJob" and fail_job is None:
                    fail_job = ("PodFailurePolicy", message)
        active = [p for p in pods if (p.get("status") or {}).get("phase") not in TERMINAL]
        succeeded = [i for phase, i, _ in seen.values() if phase == "Succeeded"]
        failed = [i for phase, i, counted in seen.values() if phase == "Failed" and counted]
        restarts = 0
        if (spec.get("template") or {}).get("spec", {}).get("restartPolicy") == "OnFailure":
            restarts = sum(
                cs.get("restartCount", 0)
                for p in active
                for cs in (p.get("status") or {}).get("containerStatuses") or []
            )
        ready = sum(
            1
            for p in active
            for c in (p.get("status") or {}).get("conditions") or []
            if c.get("type") == "Ready" and c.get("status") == "True"
        )
        if spec.get("suspend"):
            self._delete_pods(active)
            self._condition(status, "Suspended", True, "JobSuspended", "Job suspended")
            self._store(job, status, [], succeeded, failed, 0)
            return
        if any(c["type"] == "Suspended" and c["status"] == "True" for c in status.get("conditions") or []):
            self._condition(status, "Suspended", False, "JobResumed", "Job resumed")
        indexed = spec.get("completionMode") == "Indexed"
        completions, parallelism = spec.get("completions"), int(spec.get("parallelism", 1))
        deadline = spec.get("activeDeadlineSeconds")
        started = self.started_at.setdefault(uid, time.time())
        status.setdefault("startTime", now())
        per_index = spec.get("backoffLimitPerIndex") if indexed else None
        failed_indexes = {
            i for i in set(failed) if i is not None and per_index is not None and failed.count(i) > per_index
        }
        max_failed = spec.get("maxFailedIndexes") if per_index is not None else None
        if fail_job is None and max_failed is not None and len(failed_indexes) > int(max_failed):
            fail_job = (
                "MaxFailedIndexesExceeded",
                "Job has exceeded the specified maximal number of failed indexes",
            )
        if fail_job is not None:
            self._finish(job, status, active, False, *fail_job)
            active = []
        elif deadline is not None and time.time() - started >= float(deadline):
            self._finish(
                job,
                status,
                active,
                False,
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            )
            active = []
        elif per_index is None and len(failed) + restarts > int(spec.get("backoffLimit", 6)):
            self._finish(
                job,
                status,
                active,
                False,
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            )
            active = []
        elif indexed:
            active = self._indexed(
                job, status, active, set(succeeded), failed_indexes, int(completions or 0), parallelism
            )
        else:
            done = (
                len(succeeded) >= completions if completions is not None else bool(succeeded) and not active
            )
            if done:
                self._finish(
                    job,
                    status,
                    active,
                    True,
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                )
                active = []
            else:
                want = (
                    min(parallelism, completions - len(succeeded))
                    if completions is not None
                    else (0 if succeeded else parallelism)
                )
                for _ in range(want - len(active)):
                    self._create_pod(job, None)
        self._store(job, status, active, succeeded, failed, ready if active else 0)

    def _indexed(
        self,
        job: Obj,
        status: Obj,
        active: list[Obj],
        succeeded: set[int | None],
        failed_indexes: set[int],
        completions: int,
        parallelism: int,
    ) -> list[Obj]:
        done = {i for i in succeeded if i is not None}
        status["completedIndexes"] = _ranges(done)
        if failed_indexes:
            status["failedIndexes"] = _ranges(failed_indexes)
        if len(done | failed_indexes) >= completions:
            if failed_indexes:
                self._finish(job, status, active, False, "FailedIndexes", "Job has failed indexes")
            else:
                self._finish(
                    job,
                    status,
                    active,
                    True,
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                )
            return []
        running = {_index(p) for p in active}
        pending = [i for i in range(completions) if i not in done | failed_indexes | running]
        for index in pending[: max(0, parallelism - len(active))]:
            self._create_pod(job, index)
        return active

    def _store(
        self, job: Obj, status: Obj, active: list[Any], succeeded: list[Any], failed: list[Any], ready: int
    ) -> None:
        for field, value in (("active", len(active)), ("succeeded", len(succeeded)), ("failed", len(failed))):
            if value:
                status[field] = value
            else:
                status.pop(field, None)
        status["ready"] = ready
        status["terminating"] = 0
        status.setdefault("uncountedTerminatedPods", {})
        current = self.cluster.store.get(JOBS, job["metadata"]["namespace"], job["metadata"]["name"])
        if current is not None and current.get("status") != status:
            changed = copy.deepcopy(current)
            changed["status"] = status
            self.cluster.write(self.jobs_rt, changed)

    def _ttl(self, job: Obj, status: Obj) -> None:
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        uid = job["metadata"]["uid"]
        finished = self.finished_at.get(uid)
        if finished is None:
            times = [
                parse_time(c.get("lastTransitionTime"))
                for c in status.get("conditions") or []
                if c["type"] in ("Complete", "Failed")
            ]
            finished = self.finished_at[uid] = next((t for t in times if t is not None), time.time())
        if time.time() >= finished + float(ttl):
            self.finished_at.pop(uid, None)
            meta = job["metadata"]
            self.cluster.delete(self.jobs_rt, meta["namespace"], meta["name"], propagation="Background")
