"""Notebook runs (``notebook`` workloads) on the Kubernetes backend: papermill in a Job.

The objects come from :mod:`.notebook_manifests`: a payload ConfigMap and a Job, or with
``--schedule`` a CronJob whose Jobs run the same pod. Every run publishes its run directory
(``input.ipynb``, ``output.ipynb``, ``outputs/``, ``logs/output.log``, ``provenance.json``)
to ``<output>/<Job name>``; the store record's ``info["location"]`` says where (for a
schedule: the base, under which each run has its own folder). The cluster is the source of
truth, as for pods:

- a one-off run: its Job and pod, as a pod workload; a failure's message is the runner's
  own (``cell 3 failed: ValueError: …``), read from the end of the log;
- a schedule: running until cancelled, its message says the schedule and how the last run
  went (``scheduled '0 3 * * *'; last run nb-1-29512345 succeeded at …``), from the
  CronJob (through the backend's tracker, which also lists and watches CronJobs) and its Jobs;
- logs: the pod's (for a schedule the newest run's; following goes on from run to run);
- a schedule is paused and resumed through its CronJob's ``suspend`` (:meth:`NotebookRuns.suspend`);
  :meth:`NotebookRuns.runs` lists the Jobs it made;
- cancel and rm: the Job or CronJob (its Jobs and pods go with it), the ConfigMap and the
  NetworkPolicy.

A notebook too large for a ConfigMap is uploaded to ``<output>/<id>/input.ipynb`` with
fsspec before any object is created, and removed again if creating them fails.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import BackendUnavailable, Conflict
from ...private import make_private, private_dir
from ...runtime.notebook import INPUT, run_location
from ...spec import NotebookSpec
from ...store import CANCELLED, FAILED, RUNNING, Workload
from ..base import Payload
from .logs import MarkerFilter
from .manifests import container_resources
from .notebook_manifests import CONFIG_KEY, check_output, notebook_location, payload_of, uploads_input
from .preflight import check_fits
from .settings import ID_LABEL
from .status import Observed, observe, timestamp

if TYPE_CHECKING:
    from .backend import KubernetesBackend

#: lines the runner prints that are not a failure (the failure is its last other ``workbench:`` line)
_INFO_PREFIXES = ("workbench: executing ", "workbench: executed notebook ", "workbench: run directory ")


def _finished(job: Mapping[str, Any]) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions)


def _created(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("creationTimestamp") or "")


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "an unknown time"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def observe_schedule(cronjob: Mapping[str, Any], jobs: Sequence[Mapping[str, Any]]) -> Observed:
    """A schedule's status: running until cancelled; the message says how the runs go."""
    spec, status = cronjob.get("spec") or {}, cronjob.get("status") or {}
    parts = [f"scheduled {spec.get('schedule')!r}" + (" (suspended)" if spec.get("suspend") else "")]
    ordered = sorted(jobs, key=_created)
    running = [j for j in ordered if not _finished(j)]
    done = [j for j in ordered if _finished(j)]
    if running:
        job = running[-1]
        began = timestamp((job.get("status") or {}).get("startTime")) or timestamp(_created(job))
        parts.append(f"{job['metadata']['name']} running since {_when(began)}")
    if done:
        job = done[-1]
        seen = observe(job, [])
        outcome = seen.status if seen is not None else "ended"
        parts.append(f"last run {job['metadata']['name']} {outcome} at {_when(seen.ended if seen else None)}")
    elif status.get("lastSuccessfulTime"):
        parts.append(f"last run succeeded at {status['lastSuccessfulTime']}")
    elif not running:
        parts.append("no run yet")
    return Observed(RUNNING, "; ".join(parts), None, timestamp(_created(cronjob)))


def failure_line(log: str) -> str:
    """The runner's failure message in a run's log (``cell 2 failed: …``), else its last line."""
    lines = [line.strip() for line in MarkerFilter().feed(log + "\n").splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("workbench: ") and not line.startswith(_INFO_PREFIXES):
            return line.removeprefix("workbench: ")[:300]
    return lines[-1][:300] if lines else ""


def _waiting(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Running", "Succeeded", "Failed")


class NotebookRuns:
    """The notebook half of :class:`~.backend.KubernetesBackend` (which dispatches here by kind)."""

    def __init__(self, backend: KubernetesBackend) -> None:
        self.backend = backend
        self.store = backend.store

    @property
    def client(self) -> Any:
        return self.backend.client

    # -- submit ----------------------------------------------------------------------------------------
    def submit(
        self, workload_id: str, spec: NotebookSpec, payload: Payload, docs: list[dict[str, Any]]
    ) -> Workload:
        main = docs[-1]
        job_spec = main["spec"]["jobTemplate"]["spec"] if main["kind"] == "CronJob" else main["spec"]
        requests = container_resources(spec.resources, self.backend.kube).get("limits", {})
        check_fits(requests, job_spec["template"]["spec"].get("nodeSelector", {}), self.client.nodes())
        run_dir = self.backend.settings.runs_dir / workload_id
        self.backend.insert_pending(
            workload_id,
            spec,
            payload,
            f"creating the {main['kind']}",
            info={"location": notebook_location(spec, workload_id)},
        )
        undo_upload: Callable[[], None] | None = None
        try:
            self._keep(run_dir, spec, payload, docs)
            if uploads_input(docs):
                undo_upload = self._upload(check_output(spec), workload_id, payload.extra["notebook"])
            created = self.client.create_all(docs)
            for obj in created[:-1]:  # the Job's TTL (or deletion) removes them too
                self.backend.adopt(obj, created[-1])
        except BaseException:
            self.store.delete(workload_id)
            shutil.rmtree(run_dir, ignore_errors=True)
            if undo_upload is not None:
                undo_upload()
            raise
        return self.store.get(workload_id)

    def _keep(self, run_dir: Path, spec: NotebookSpec, payload: Payload, docs: list[dict[str, Any]]) -> None:
        """A local copy of what was sent, for `workbench export` and `workbench notebook rerun`."""
        if run_dir.exists():
            shutil.rmtree(run_dir)
        private_dir(run_dir / "payload")
        config = json.loads(payload_of(docs)["data"][CONFIG_KEY])
        (run_dir / "payload" / CONFIG_KEY).write_text(json.dumps(config, indent=2))
        (run_dir / INPUT).write_bytes(payload.extra["notebook"])
        (run_dir / "spec.json").write_text(spec.model_dump_json(indent=2))
        (run_dir / "launch.json").write_text(json.dumps({"cwd": payload.cwd}, indent=2))
        make_private(run_dir)

    def _upload(self, output: str, workload_id: str, notebook: bytes) -> Callable[[], None]:
        """Put the input at ``<output>/<id>/input.ipynb``; returns what removes it (and the
        folders made for it) again."""
        import fsspec

        folder = run_location(output, workload_id)
        target = f"{folder}/{INPUT}"
        try:
            fs, root = fsspec.core.url_to_fs(folder)
            made: list[str] = []  # the folders that did not exist, deepest first
            path = root
            while path and path not in ("/", ".") and not fs.exists(path):
                made.append(path)
                path = posixpath.dirname(path.rstrip("/"))
            fs.makedirs(root, exist_ok=True)
            fs.pipe_file(f"{root}/{INPUT}", notebook)
        except Exception as exc:
            raise BackendUnavailable(
                f"cannot upload the notebook to {target} ({type(exc).__name__}: {exc}); "
                "it is too large for a ConfigMap, so the run reads it from there",
                value=target,
                hint="check --output and the credentials for it on this machine",
            ) from None

        def undo() -> None:
            with contextlib.suppress(Exception):  # best effort: the first error is the one to report
                fs.rm(f"{root}/{INPUT}")
                for path in made:
                    if fs.isdir(path) and not fs.ls(path):
                        fs.rmdir(path)

        return undo

    # -- state -----------------------------------------------------------------------------------------
    def cronjob(self, workload_id: str, *, fresh: bool = True) -> dict[str, Any] | None:
        found = self.backend.tracker.objects("CronJob", {ID_LABEL: workload_id}, fresh=fresh)
        return found[0] if found else None

    def refresh(self, workload: Workload) -> Workload:
        if not workload.spec.get("schedule"):
            backend = self.backend
            observed = backend.observe_job(workload.id)
            return backend.record(
                workload, observed, lambda: failure_line(backend.newest_pod_log(workload.id))
            )
        cronjob = self.cronjob(workload.id)
        if cronjob is None:
            if time.time() - workload.created < 5:
                return workload  # created a moment ago; the list may predate it
            status = CANCELLED if workload.cancel_requested else FAILED
            message = (
                "cancelled" if workload.cancel_requested else "the CronJob was deleted outside workbench"
            )
            self.store.finish(workload.id, status, exit_code=None, message=message)
            return self.store.get(workload.id)
        jobs = self.backend.tracker.objects("Job", {ID_LABEL: workload.id})
        suspended = bool((cronjob.get("spec") or {}).get("suspend"))
        if bool((workload.info.get("schedule") or {}).get("suspended")) != suspended:  # kubectl too
            self.store.merge_info(workload.id, "schedule", {"suspended": suspended})
        return self.backend.record(workload, observe_schedule(cronjob, jobs), lambda: "")

    # -- schedules -------------------------------------------------------------------------------------
    def _scheduled(self, workload: Workload, what: str) -> None:
        if not workload.spec.get("schedule"):
            raise Conflict(
                f"{workload.id} is a one-off notebook run, not a schedule; {what} applies to schedules",
                value=workload.id,
                hint="launch the notebook with a schedule (backend kubernetes) to run it repeatedly",
            )

    def suspend(self, workload: Workload, suspended: bool) -> Workload:
        """Pause (``suspended``) or resume a schedule: its CronJob's ``suspend``; a run already
        going runs on. Its record's ``info["schedule"]["suspended"]`` says which.

        Raises:
            Conflict: not a schedule, or one that has ended.
        """
        what = "pause" if suspended else "resume"
        self._scheduled(workload, what)
        if workload.done:
            raise Conflict(
                f"the schedule {workload.id} has ended ({workload.status}); there is nothing to {what}",
                value=workload.id,
                hint="launch it again to run it on its schedule",
            )
        self.client.patch("CronJob", workload.id, {"spec": {"suspend": suspended}})
        self.backend.tracker.relist("CronJob")
        self.store.merge_info(workload.id, "schedule", {"suspended": suspended})
        return self.refresh(self.store.get(workload.id))

    def runs(self, workload: Workload) -> list[dict[str, Any]]:
        """The Jobs a schedule made, newest first: ``{"name", "status", "message", "started", "ended",
        "location"}`` (times in seconds since the epoch; ``location``: the run's directory).

        Raises:
            Conflict: not a schedule.
        """
        self._scheduled(workload, "listing runs")
        jobs = self.backend.tracker.objects("Job", {ID_LABEL: workload.id})
        pods = self.backend.pods(workload.id)
        base = workload.info.get("location")
        result = []
        for job in sorted(jobs, key=_created, reverse=True):
            name = job["metadata"]["name"]
            mine = [p for p in pods if (p["metadata"].get("labels") or {}).get("job-name") == name]
            seen = observe(job, mine)
            result.append(
                {
                    "name": name,
                    "status": seen.status if seen else "unknown",
                    "message": seen.message if seen else "",
                    "started": (seen.started if seen else None) or timestamp(_created(job)),
                    "ended": seen.ended if seen else None,
                    "location": run_location(str(base), name) if isinstance(base, str) and base else None,
                }
            )
        return result

    # -- output ----------------------------------------------------------------------------------------
    def logs(self, workload: Workload, *, follow: bool = False) -> Iterator[str]:
        if not workload.spec.get("schedule") or not follow:
            yield from self.backend.pod_logs(workload, follow=follow)
            return
        yield from self._follow_schedule(workload)

    def _follow_schedule(self, workload: Workload) -> Iterator[str]:
        """Every run's log in turn, as the runs come, until the schedule is cancelled."""
        streamed: set[str] = set()
        tracker = self.backend.tracker
        while True:
            record = self.backend.refresh(self.store.get(workload.id))
            ready = [
                p
                for p in self.backend.pods(workload.id)
                if p["metadata"]["name"] not in streamed and not _waiting(p)
            ]
            if ready:
                pod = ready[0]["metadata"]["name"]
                streamed.add(pod)
                run = (ready[0]["metadata"].get("labels") or {}).get("job-name", pod)
                yield f"[workbench] {workload.id}: run {run}\n"
                marker = MarkerFilter()
                for chunk in self.client.logs(pod, follow=True):
                    text = marker.feed(chunk.decode("utf-8", "replace"))
                    if text:
                        yield text
                tail = marker.close()
                if tail:
                    yield tail
                continue
            if record.done:
                return

            def changed() -> bool:
                pods = self.backend.pods(workload.id, fresh=False)
                if any(p["metadata"]["name"] not in streamed and not _waiting(p) for p in pods):
                    return True
                return self.cronjob(workload.id, fresh=False) is None

            tracker.wait(changed, timeout=2.0)

    # -- stopping --------------------------------------------------------------------------------------
    def delete_objects(self, workload: Workload) -> None:
        """The Job or CronJob (its Jobs and pods go with it, in the background), the ConfigMap
        and the NetworkPolicy."""
        self.client.delete("CronJob" if workload.spec.get("schedule") else "Job", workload.id)
        self.client.delete("ConfigMap", f"{workload.id}-payload")
        self.client.delete("NetworkPolicy", workload.id)
