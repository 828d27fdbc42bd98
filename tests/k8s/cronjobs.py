"""The CronJob controller: a Job from the jobTemplate each time a CronJob's schedule is due.

As kube-controller-manager's: the newest due time since ``status.lastScheduleTime`` (or the
CronJob's creation) becomes a Job named ``<cronjob>-<scheduled time in minutes since the
epoch>`` with the jobTemplate's labels, annotations and spec, the
``batch.kubernetes.io/cronjob-scheduled-timestamp`` annotation and a controller
ownerReference to the CronJob (so deleting it in the background removes its Jobs and their
pods). ``schedule`` is read in ``timeZone`` (default UTC); ``suspend``,
``startingDeadlineSeconds`` and ``concurrencyPolicy`` are honoured (Forbid: skip while a
Job is active, leaving ``lastScheduleTime`` as it is so the run starts once the active one
ends; Replace: delete the active Jobs first). ``status.active``, ``lastScheduleTime`` and
``lastSuccessfulTime`` are kept; finished Jobs beyond ``successfulJobsHistoryLimit`` and
``failedJobsHistoryLimit`` are deleted, oldest first. Events as the real controller's.

Tests need not wait for the wall clock:

- ``Emulator.fire_cronjob(name, namespace="default")`` makes the CronJob's next scheduled
  run (the first schedule time after its last one, or after its creation) start now, through
  the same path as a due run, and returns the Job's name; None when it was not started
  (``suspend: true``, ``concurrencyPolicy: Forbid`` with a Job still active, or the Job could
  not be created);
- ``CronJobController.clock`` (``Emulator.cronjobs.clock``) is the controller's clock in
  seconds since the epoch; a test may replace it to move time.
"""

from __future__ import annotations

import copy
import datetime as dt
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

from croniter import croniter

from .cluster import Cluster, parse_time
from .errors import ApiError
from .resources import ResourceType
from .store import Obj

CRONJOBS = ("batch", "cronjobs")
JOBS = ("batch", "jobs")
SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
COMPONENT = "cronjob-controller"


def rfc3339(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _outcome(job: Obj) -> str | None:
    """ "Complete" or "Failed" once the Job has finished, else None."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return None


def _zone(cronjob: Obj) -> dt.tzinfo:
    name = (cronjob.get("spec") or {}).get("timeZone")
    return ZoneInfo(name) if name else dt.UTC


class CronJobController:
    def __init__(
        self,
        cluster: Cluster,
        cronjobs_rt: ResourceType,
        jobs_rt: ResourceType,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cluster = cluster
        self.cronjobs_rt = cronjobs_rt
        self.jobs_rt = jobs_rt
        self.clock = clock
        #: CronJob uid → names of the Jobs seen active, to report each one's completion once
        self._active: dict[str, set[str]] = {}

    # helpers -----------------------------------------------------------------------------

    def _children(self, cronjob: Obj) -> list[Obj]:
        uid = cronjob["metadata"]["uid"]
        return [
            job
            for job in self.cluster.store.list(JOBS, cronjob["metadata"]["namespace"])
            if any(
                ref.get("uid") == uid and ref.get("controller")
                for ref in job["metadata"].get("ownerReferences") or []
            )
        ]

    def _earliest(self, cronjob: Obj) -> float:
        status = cronjob.get("status") or {}
        last = parse_time(status.get("lastScheduleTime"))
        created = parse_time(cronjob["metadata"].get("creationTimestamp")) or self.clock()
        return last if last is not None else created

    def _most_recent_due(self, cronjob: Obj) -> float | None:
        """The newest schedule time in (earliest, now], or None."""
        spec = cronjob.get("spec") or {}
        now = dt.datetime.fromtimestamp(self.clock(), _zone(cronjob))
        due = croniter(str(spec.get("schedule")), now).get_prev(dt.datetime).timestamp()
        return due if due > self._earliest(cronjob) else None

    def _next_after(self, cronjob: Obj, after: float) -> float:
        spec = cronjob.get("spec") or {}
        start = dt.datetime.fromtimestamp(after, _zone(cronjob))
        return float(croniter(str(spec.get("schedule")), start).get_next(dt.datetime).timestamp())

    def _write_status(self, cronjob: Obj, status: Obj) -> Obj:
        current = self.cluster.store.get(
            CRONJOBS, cronjob["metadata"]["namespace"], cronjob["metadata"]["name"]
        )
        if current is None or current["metadata"]["uid"] != cronjob["metadata"]["uid"]:
            return cronjob
        if current.get("status") == status:
            return current
        changed = copy.deepcopy(current)
        changed["status"] = status
        return self.cluster.write(self.cronjobs_rt, changed)

    @staticmethod
    def _reference(job: Obj) -> Obj:
        meta = job["metadata"]
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta.get("resourceVersion"),
        }

    # the reconcile -----------------------------------------------------------------------

    def sync(self) -> None:
        cronjobs = self.cluster.store.list(CRONJOBS)
        live = {c["metadata"]["uid"] for c in cronjobs}
        self._active = {k: v for k, v in self._active.items() if k in live}
        for cronjob in cronjobs:
            try:
                self._sync(cronjob)
            except ApiError:
                continue

    def _sync(self, cronjob: Obj) -> None:
        cronjob = self._observe(cronjob)
        spec = cronjob.get("spec") or {}
        if spec.get("suspend"):
            return
        due = self._most_recent_due(cronjob)
        if due is not None:
            self._start(cronjob, due)

    def _observe(self, cronjob: Obj) -> Obj:
        """Bring status.active and lastSuccessfulTime up to date; apply the history limits."""
        uid = cronjob["metadata"]["uid"]
        status = copy.deepcopy(cronjob.get("status") or {})
        children = self._children(cronjob)
        seen = self._active.setdefault(uid, set())
        for job in children:
            outcome = _outcome(job)
            if outcome is None:
                seen.add(job["metadata"]["name"])
                continue
            if job["metadata"]["name"] in seen:
                seen.discard(job["metadata"]["name"])
                self.cluster.event(
                    cronjob,
                    "SawCompletedJob",
                    f"Saw completed job: {job['metadata']['name']}, condition: {outcome}",
                    component=COMPONENT,
                )
            completed = (job.get("status") or {}).get("completionTime")
            if outcome == "Complete" and completed:
                last = status.get("lastSuccessfulTime")
                if last is None or (parse_time(completed) or 0) > (parse_time(last) or 0):
                    status["lastSuccessfulTime"] = completed
        active = [self._reference(j) for j in children if _outcome(j) is None]
        if active:
            status["active"] = active
        else:
            status.pop("active", None)
        self._history(cronjob, children)
        return self._write_status(cronjob, status)

    def _history(self, cronjob: Obj, children: list[Obj]) -> None:
        spec = cronjob.get("spec") or {}
        for outcome, field, default in (
            ("Complete", "successfulJobsHistoryLimit", 3),
            ("Failed", "failedJobsHistoryLimit", 1),
        ):
            limit = spec.get(field, default)
            if limit is None:
                continue
            finished = sorted(
                (j for j in children if _outcome(j) == outcome),
                key=lambda j: (
                    (j.get("status") or {}).get("startTime") or j["metadata"].get("creationTimestamp", "")
                ),
            )
            for job in finished[: max(0, len(finished) - int(limit))]:
                meta = job["metadata"]
                try:
                    self.cluster.delete(
                        self.jobs_rt, meta["namespace"], meta["name"], propagation="Background"
                    )
                except ApiError:
                    continue
                self.cluster.event(
                    cronjob, "SuccessfulDelete", f"Deleted job {meta['name']}", component=COMPONENT
                )

    def _start(self, cronjob: Obj, scheduled: float) -> str | None:
        """Create the Job of the run scheduled at ``scheduled``; its name, or None if not started."""
        meta, spec = cronjob["metadata"], cronjob.get("spec") or {}
        namespace = meta["namespace"]
        name = f"{meta['name']}-{int(scheduled // 60)}"
        if self.cluster.store.get(JOBS, namespace, name) is not None:
            return name
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None and self.clock() - scheduled > float(deadline):
            self.cluster.event(
                cronjob,
                "MissSchedule",
                f"Missed scheduled time to start a job: {rfc3339(scheduled)}",
                type_="Warning",
                component=COMPONENT,
            )
            return None
        active = [j for j in self._children(cronjob) if _outcome(j) is None]
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and active:
            self.cluster.event(
                cronjob,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid",
                component=COMPONENT,
            )
            return None
        if policy == "Replace":
            for job in active:
                jmeta = job["metadata"]
                self.cluster.delete(self.jobs_rt, namespace, jmeta["name"], propagation="Background")
                self.cluster.event(
                    cronjob, "SuccessfulDelete", f"Deleted job {jmeta['name']}", component=COMPONENT
                )
        template = copy.deepcopy(spec.get("jobTemplate") or {})
        tmeta = template.get("metadata") or {}
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": dict(tmeta.get("labels") or {}),
                "annotations": {**(tmeta.get("annotations") or {}), SCHEDULED_ANNOTATION: rfc3339(scheduled)},
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "CronJob",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": template.get("spec") or {},
        }
        try:
            created = self.cluster.create(self.jobs_rt, namespace, job)
        except ApiError as exc:
            self.cluster.event(
                cronjob,
                "FailedCreate",
                f"Error creating job: {exc.message}",
                type_="Warning",
                component=COMPONENT,
            )
            return None
        self.cluster.event(cronjob, "SuccessfulCreate", f"Created job {name}", component=COMPONENT)
        self._active.setdefault(meta["uid"], set()).add(name)
        current = self.cluster.store.get(CRONJOBS, namespace, meta["name"]) or cronjob
        status = copy.deepcopy(current.get("status") or {})
        status["lastScheduleTime"] = rfc3339(scheduled)
        status["active"] = [*(status.get("active") or []), self._reference(created)]
        self._write_status(current, status)
        return name

    # for tests ---------------------------------------------------------------------------

    def fire(self, namespace: str, name: str) -> str | None:
        """Start the CronJob's next scheduled run now (see the module docstring)."""
        cronjob = self.cluster.store.get(CRONJOBS, namespace, name)
        if cronjob is None:
            raise KeyError(f"no CronJob {namespace}/{name}")
        cronjob = self._observe(cronjob)
        if (cronjob.get("spec") or {}).get("suspend"):
            return None  # the controller starts no run of a suspended CronJob when it is due
        return self._start(cronjob, self._next_after(cronjob, self._earliest(cronjob)))
