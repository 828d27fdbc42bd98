"""Schedules over HTTP (Kubernetes CronJobs, against the API emulator): pause, resume, their runs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import kubernetes
import nbformat
import pytest

from tests.k8s.emulator import Emulator
from tests.k8s.fixtures import api_client, k8s, kubeconfig  # noqa: F401

from .conftest import Api, wait_until

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


@pytest.fixture
def kube_env(kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    """The kubernetes backend pointed at the emulator (set before the server reads its settings)."""
    monkeypatch.setenv("WORKBENCH_KUBERNETES__KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("WORKBENCH_KUBERNETES__RETRY_BACKOFF", "0.05")
    monkeypatch.setenv("WORKBENCH_KUBERNETES__REQUEST_TIMEOUT", "5")
    return kubeconfig


def cronjob_suspended(k8s: Emulator, name: str) -> bool:  # noqa: F811
    cronjob = k8s.get("cronjobs", name, group="batch")
    assert cronjob is not None
    return bool(cronjob["spec"].get("suspend"))


async def test_pause_resume_and_list_the_runs_of_a_schedule(
    kube_env: Path,
    k8s: Emulator,  # noqa: F811
    api: Api,
    jp_root_dir: Path,
) -> None:
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    nb.cells.append(nbformat.v4.new_code_cell("print('nightly ran')"))
    nbformat.write(nb, str(jp_root_dir / "nightly.ipynb"))
    body = {
        "kind": "notebook",
        "notebook": "nightly.ipynb",
        "backend": "kubernetes",
        "output": f"file://{jp_root_dir}/runs",
        "schedule": "0 3 * * *",
        "name": "nightly",
    }
    created = await api("POST", "workloads", body=body)
    assert created.code == 201, created.body
    once = {k: v for k, v in body.items() if k not in ("schedule", "name")}
    one_off = (await api("POST", "workloads", body=once)).json["name"]  # its files are read below
    assert (await api("GET", "workloads", "nightly", "runs")).json == {"runs": []}

    paused = await api("POST", "workloads", "nightly", "pause")
    assert paused.code == 200, paused.body
    assert paused.json["name"] == "nightly" and paused.json["status"] == "running"
    assert paused.json["info"]["schedule"] == {"suspended": True}
    assert "(suspended)" in paused.json["message"]
    assert cronjob_suspended(k8s, "nightly")
    assert k8s.fire_cronjob("nightly") is None  # due, but paused: no run

    resumed = await api("POST", "workloads", "nightly", "resume")
    assert resumed.code == 200 and resumed.json["info"]["schedule"] == {"suspended": False}
    assert "(suspended)" not in resumed.json["message"]
    assert not cronjob_suspended(k8s, "nightly")
    job = k8s.fire_cronjob("nightly")
    assert job is not None and job.startswith("nightly-")

    deadline = time.monotonic() + 90
    while True:
        runs = (await api("GET", "workloads", "nightly", "runs")).json["runs"]
        if runs and runs[0]["status"] == "succeeded":
            break
        assert time.monotonic() < deadline, runs
        await asyncio.sleep(0.1)
    (run,) = runs
    assert run["name"] == job and run["started"] <= run["ended"]
    assert run["location"] == f"file://{jp_root_dir}/runs/{job}"
    assert (jp_root_dir / "runs" / job / "output.ipynb").exists()

    # a pause from elsewhere (kubectl) shows in the record too
    batch = kubernetes.client.BatchV1Api(api_client(k8s))
    await asyncio.to_thread(
        batch.patch_namespaced_cron_job, "nightly", "default", {"spec": {"suspend": True}}
    )
    deadline = time.monotonic() + 30
    while (await api("GET", "workloads", "nightly")).json["info"].get("schedule") != {"suspended": True}:
        assert time.monotonic() < deadline, "the kubectl suspend never showed"
        await asyncio.sleep(0.1)

    # a one-off run on Kubernetes: its run directory is the published one (a shared filesystem here)
    assert (await wait_until(api, one_off, timeout=90))["status"] == "succeeded"
    files = (await api("GET", "workloads", one_off, "files")).json
    assert files["run_dir"] == str(jp_root_dir / "runs" / one_off) and files["notebook"] == "output.ipynb"
    executed = await api("GET", "workloads", one_off, "files", "output.ipynb", params={"inline": "1"})
    assert "nightly ran" in executed.text
    assert (await api("GET", "workloads", one_off, "runs")).code == 409  # not a schedule either

    # not a schedule: a one-off workload answers 409 to all three
    pod = (await api("POST", "workloads", body={"kind": "pod", "code": "pass", "backend": "local"})).json[
        "name"
    ]
    for method, action in (("POST", "pause"), ("POST", "resume"), ("GET", "runs")):
        reply = await api(method, "workloads", pod, action)
        assert reply.code == 409, (action, reply.body)
        assert "not a schedule" in reply.json["message"] and reply.json["error"] == "Conflict"
    assert (await api("POST", "workloads", "no-such", "pause")).code == 404

    cancelled = await api("POST", "workloads", "nightly", "cancel")
    assert cancelled.json["status"] == "cancelled"
    ended = await api("POST", "workloads", "nightly", "resume")
    assert ended.code == 409 and "has ended" in ended.json["message"]
    await wait_until(api, pod)
