"""The emulator's CronJob controller: Jobs from the jobTemplate when the schedule is due."""

from __future__ import annotations

import datetime as dt
from typing import Any

import kubernetes
import pytest
from kubernetes.client import ApiException

from tests.k8s import Emulator
from tests.k8s.cronjobs import SCHEDULED_ANNOTATION
from tests.k8s.helpers import job, job_condition, job_pods, pid_gone, wait_for
from tests.k8s.helpers import status_body as body


def cronjob(name: str, code: str, schedule: str = "0 3 * * *", **spec: Any) -> dict[str, Any]:
    template = job(name, code)
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {
            "schedule": schedule,
            **spec,
            "jobTemplate": {"metadata": {"labels": {"team": "ml"}}, "spec": template["spec"]},
        },
    }


def minutes(text: str) -> int:
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() // 60)


def events(core: kubernetes.client.CoreV1Api, name: str) -> list[str]:
    found = core.list_namespaced_event("default", field_selector=f"involvedObject.name={name}").items
    return [e.reason for e in found]


def test_fire_runs_the_next_scheduled_job(
    k8s: Emulator, core: kubernetes.client.CoreV1Api, batch: kubernetes.client.BatchV1Api
) -> None:
    batch.create_namespaced_cron_job("default", cronjob("nightly", "print('night run')"))
    assert batch.list_namespaced_job("default").items == []  # 03:00 is not now
    name = k8s.fire_cronjob("nightly")
    assert name is not None
    created = batch.read_namespaced_job(name, "default")
    scheduled = created.metadata.annotations[SCHEDULED_ANNOTATION]
    assert name == f"nightly-{minutes(scheduled)}"
    assert scheduled.endswith("T03:00:00Z")
    assert created.metadata.labels["team"] == "ml"
    owner = created.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.controller) == ("CronJob", "nightly", True)
    assert wait_for(lambda: job_condition(batch, name), what="the run to finish") == "Complete"
    pod = job_pods(core, name)[0]
    assert pod.metadata.labels["job-name"] == name
    assert core.read_namespaced_pod_log(pod.metadata.name, "default") == "night run\n"

    def succeeded() -> Any:
        status = batch.read_namespaced_cron_job("nightly", "default").status
        return status if status.last_successful_time and not status.active else None

    status = wait_for(succeeded, what="lastSuccessfulTime")
    assert status.last_schedule_time.strftime("%Y-%m-%dT%H:%M:%SZ") == scheduled
    assert {"SuccessfulCreate", "SawCompletedJob"} <= set(events(core, "nightly"))
    second = k8s.fire_cronjob("nightly")  # the run after that: the next night
    assert second is not None and minutes_between(name, second) == 24 * 60


def minutes_between(first: str, second: str) -> int:
    return int(second.rsplit("-", 1)[1]) - int(first.rsplit("-", 1)[1])


def test_due_schedule_starts_a_job_by_the_controllers_clock(
    k8s: Emulator, batch: kubernetes.client.BatchV1Api
) -> None:
    batch.create_namespaced_cron_job("default", cronjob("every5", "pass", schedule="*/5 * * * *"))
    later = k8s.cronjobs.clock() + 600
    k8s.cronjobs.clock = lambda: later  # ten minutes on: the most recent 5-minute mark is due
    due = int(later // 300) * 300
    name = f"every5-{due // 60}"
    wait_for(lambda: [j for j in batch.list_namespaced_job("default").items if j.metadata.name == name])
    assert len(batch.list_namespaced_job("default").items) == 1  # missed runs do not pile up


def test_forbid_skips_while_a_run_is_active_and_delete_removes_jobs_and_pods(
    k8s: Emulator, core: kubernetes.client.CoreV1Api, batch: kubernetes.client.BatchV1Api
) -> None:
    spec = cronjob("busy", "import time; time.sleep(60)", concurrencyPolicy="Forbid")
    batch.create_namespaced_cron_job("default", spec)
    first = k8s.fire_cronjob("busy")
    assert first is not None
    running = wait_for(lambda: [p for p in job_pods(core, first) if p.status.phase == "Running"])
    pid = k8s.pids(running[0].metadata.name)["main"]
    assert k8s.fire_cronjob("busy") is None
    assert "JobAlreadyActive" in events(core, "busy")
    active = batch.read_namespaced_cron_job("busy", "default").status.active
    assert [ref.name for ref in active] == [first]
    batch.delete_namespaced_cron_job("busy", "default", propagation_policy="Background")
    wait_for(lambda: not batch.list_namespaced_job("default").items, what="the Job to be collected")
    wait_for(lambda: pid_gone(pid), what="the run's process to die")


def test_history_limits_keep_the_newest_finished_jobs(
    k8s: Emulator, batch: kubernetes.client.BatchV1Api
) -> None:
    spec = cronjob("short", "pass", successfulJobsHistoryLimit=1, failedJobsHistoryLimit=0)
    batch.create_namespaced_cron_job("default", spec)
    names = []
    for _ in range(3):
        name = k8s.fire_cronjob("short")
        assert name is not None
        wait_for(lambda name=name: job_condition(batch, name))
        names.append(name)
    wait_for(lambda: [j.metadata.name for j in batch.list_namespaced_job("default").items] == names[-1:])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"metadata": {"name": "n" * 53}}, "must be no more than 52 characters"),
        ({"spec": {"schedule": "0 3 * *"}}, "expected exactly 5 fields, found 4"),
        ({"spec": {"schedule": "0 25 * * *"}}, "unparseable cron expression"),
        ({"spec": {"timeZone": "Mars/Olympus"}}, "unknown time zone Mars/Olympus"),
        ({"spec": {"concurrencyPolicy": "Sometimes"}}, 'Unsupported value: "Sometimes"'),
    ],
)
def test_invalid_cronjobs_are_refused(
    batch: kubernetes.client.BatchV1Api, change: dict[str, Any], message: str
) -> None:
    doc = cronjob("bad", "pass")
    for part, fields in change.items():
        doc[part].update(fields)
    with pytest.raises(ApiException) as info:
        batch.create_namespaced_cron_job("default", doc)
    assert info.value.status == 422
    assert message in body(info.value)["message"]
