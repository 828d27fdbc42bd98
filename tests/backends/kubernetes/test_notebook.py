"""`notebook` workloads on the Kubernetes backend, end to end against the API emulator.

The real `kubernetes` client talks to the emulator; its Job controller (and CronJob
controller, fired through ``Emulator.fire_cronjob`` instead of waiting for the schedule)
makes the pod, and the process kubelet runs ``python -m workbench.runtime.notebook`` in it:
papermill really executes the notebook and publishes the run directory to ``--output``.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.backends.local.test_notebook import git
from tests.backends.local.test_notebook import write_notebook as local_notebook
from tests.conftest import assert_nothing_created
from tests.k8s.emulator import Emulator
from workbench.config import load_settings
from workbench.errors import PermissionDenied, SpecError
from workbench.service import Service

BODY = (
    "import json, os\n"
    "print('trained', json.dumps({'lr': lr, 'epochs': epochs}))\n"
    "with open(os.path.join(os.environ['WORKBENCH_OUTPUT_DIR'], 'result.txt'), 'w') as fh:\n"
    "    fh.write(str(lr * epochs))\n"
)


def write_notebook(
    path: Path, *cells: str, parameters: str | None = "lr = 0.1\nepochs = 2", filler: int = 0
) -> Path:
    return local_notebook(path, *cells, parameters=parameters, filler=filler)


def executed(folder: Path) -> Any:
    return nbformat.read(str(folder / "output.ipynb"), as_version=4)  # type: ignore[no-untyped-call]


def provenance(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "provenance.json").read_text())
    return data


def wait_for(predicate: Any, timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def objects(k8s: Emulator, name: str) -> dict[str, Any]:
    return {
        "job": k8s.get("jobs", name, group="batch"),
        "cronjob": k8s.get("cronjobs", name, group="batch"),
        "configmap": k8s.get("configmaps", f"{name}-payload"),
    }


def test_a_parameterised_run_publishes_its_run_directory(
    kube: Service, k8s: Emulator, tmp_path: Path
) -> None:
    source = write_notebook(tmp_path / "nb" / "train.ipynb", BODY)
    git(source.parent, "init", "-q")
    git(source.parent, "add", ".")
    git(source.parent, "commit", "-q", "-m", "notebook")
    runs = tmp_path / "runs"
    workload = kube.launch(
        {
            "kind": "notebook",
            "notebook": "train.ipynb",
            "parameters": {"lr": "0.5"},
            "output": f"file://{runs}",
        },
        cwd=str(source.parent),
    )
    assert workload.kind == "notebook" and workload.backend == "kubernetes"
    location = runs / workload.id
    assert workload.info == {"location": f"file://{location}"}
    found = objects(k8s, workload.id)
    assert found["job"] is not None and found["cronjob"] is None
    owners = found["configmap"]["metadata"]["ownerReferences"]
    assert [(o["kind"], o["name"]) for o in owners] == [("Job", workload.id)]
    kept = Path(workload.run_dir)  # what `workbench notebook rerun` repeats
    assert (kept / "input.ipynb").read_bytes() == source.read_bytes()
    assert json.loads((kept / "payload" / "notebook.json").read_text())["parameters"] == {"lr": 0.5}
    assert json.loads((kept / "launch.json").read_text()) == {"cwd": str(source.parent)}
    assert json.loads((kept / "spec.json").read_text())["output"] == f"file://{runs}"
    logs = "".join(kube.logs(workload.id, follow=True))
    final = kube.wait(workload.id, timeout=90)
    assert (final.status, final.exit_code) == ("succeeded", 0), (final.message, logs)
    assert 'trained {"lr": 0.5, "epochs": 2}' in logs
    nb = executed(location)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "lr = 0.5" in injected[0].source
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert 'trained {"lr": 0.5, "epochs": 2}' in printed
    assert (location / "outputs" / "result.txt").read_text() == "1.0"
    assert (location / "input.ipynb").read_bytes() == source.read_bytes()
    manifest = provenance(location)
    assert manifest["status"] == "succeeded" and manifest["parameters"] == {"lr": 0.5}
    assert manifest["workload"] == workload.id
    # the repository as it was at launch (the pod cannot see it)
    assert manifest["git"] == {
        "commit": git(source.parent, "rev-parse", "HEAD"),
        "dirty": False,
        "repository": str(source.parent.resolve()),
    }
    assert "trained" in (location / "logs" / "output.log").read_text()
    assert kube.verify(workload.id) == []  # `workbench verify NAME` finds the published run
    from workbench.notebooks import rerun_fields

    raw, cwd = rerun_fields(kube.get(workload.id))  # `workbench notebook rerun`: from the kept snapshot
    rerun = kube.wait(kube.launch(raw, cwd=cwd).id, timeout=90)
    assert rerun.status == "succeeded", rerun.message
    assert provenance(runs / rerun.id)["parameters"] == {"lr": 0.5}
    assert provenance(runs / rerun.id)["input"]["sha256"] == manifest["input"]["sha256"]
    kube.delete(rerun.id)
    # launched elsewhere: found again by its labels, with where its run directory is
    kube.store.delete(workload.id)
    listed = {w.id: w for w in kube.list()}
    again = listed[workload.id]
    assert (again.kind, again.status, again.info) == (
        "notebook",
        "succeeded",
        {"location": f"file://{location}"},
    )
    assert again.spec == workload.spec


def test_a_failing_cell_fails_the_run_naming_the_cell_and_keeps_what_ran(
    kube: Service, k8s: Emulator, tmp_path: Path
) -> None:
    source = write_notebook(
        tmp_path / "broken.ipynb",
        "print('first cell ran')",
        "raise ValueError('bad shape')",
        "print('never')",
    )
    runs = tmp_path / "runs"
    workload = kube.launch({"kind": "notebook", "notebook": str(source), "output": f"file://{runs}"})
    final = kube.wait(workload.id, timeout=90)
    assert final.status == "failed" and final.exit_code == 1
    assert final.message.startswith("exited with code 1: cell ")
    assert "failed: ValueError: bad shape" in final.message
    location = runs / workload.id
    cells = executed(location).cells
    outputs = ["".join(o.get("text", "") for o in c.get("outputs", [])) for c in cells]
    assert any("first cell ran" in text for text in outputs)
    assert not any("never" in text for text in outputs)
    manifest = provenance(location)
    assert manifest["status"] == "failed" and manifest["error"]["ename"] == "ValueError"


def test_output_on_a_pvc_mount_lands_in_the_claim(kube: Service, k8s: Emulator, tmp_path: Path) -> None:
    source = write_notebook(tmp_path / "pvc.ipynb", BODY)
    # the mount path as the pod sees it; the process kubelet maps it to the claim's folder (a
    # path under the emulator's root, so that a runner writing to it unmapped harms nothing here)
    mount = k8s.root / "in-pod" / "mnt" / "runs"
    workload = kube.launch(
        {
            "kind": "notebook",
            "notebook": str(source),
            "output": f"{mount}/team",
            "volumes": [f"pvc/runs:{mount}"],
        }
    )
    assert workload.info == {"location": f"{mount}/team/{workload.id}"}
    final = kube.wait(workload.id, timeout=90)
    assert final.status == "succeeded", final.message
    assert not mount.exists()  # the runner wrote through the mount, not to the pod's path here
    folder = k8s.pvc_dir("runs") / "team" / workload.id
    assert provenance(folder)["status"] == "succeeded"
    assert (folder / "outputs" / "result.txt").read_text() == "0.2"


def test_cancel_stops_the_notebook_and_deletes_its_objects(
    kube: Service, k8s: Emulator, tmp_path: Path
) -> None:
    source = write_notebook(
        tmp_path / "slow.ipynb", "import time\nprint('started', flush=True)\ntime.sleep(300)"
    )
    workload = kube.launch({"kind": "notebook", "notebook": str(source), "output": f"file://{tmp_path}/runs"})
    wait_for(lambda: kube.get(workload.id).status == "running", what="the run to start")
    pids = wait_for(k8s.live_pids, what="the pod's process")
    final = kube.cancel(workload.id)
    assert final.status == "cancelled"
    wait_for(lambda: not any(objects(k8s, workload.id).values()), what="the Job and ConfigMap to go")
    wait_for(lambda: not any(p in k8s.live_pids() for p in pids), what="the process to die")


def test_a_schedule_runs_each_time_it_is_due_until_cancelled(
    kube: Service, k8s: Emulator, tmp_path: Path
) -> None:
    source = write_notebook(tmp_path / "nightly.ipynb", BODY)
    runs = tmp_path / "runs"
    workload = kube.launch(
        {
            "kind": "notebook",
            "notebook": str(source),
            "parameters": {"epochs": 3},
            "output": f"file://{runs}",
            "schedule": "0 3 * * *",
            "name": "nightly",
        }
    )
    assert workload.info == {"location": f"file://{runs}"}
    found = objects(k8s, "nightly")
    assert found["cronjob"] is not None and found["job"] is None
    assert found["cronjob"]["spec"]["concurrencyPolicy"] == "Forbid"
    owners = found["configmap"]["metadata"]["ownerReferences"]
    assert [(o["kind"], o["name"]) for o in owners] == [("CronJob", "nightly")]
    record = wait_for(lambda: (w := kube.get("nightly")).status == "running" and w, what="running")
    assert record.message == "scheduled '0 3 * * *'; no run yet"
    followed: list[str] = []

    def follow() -> None:  # as `workbench logs -f nightly` elsewhere: run after run until cancelled
        other = Service(load_settings())
        try:
            followed.extend(other.logs("nightly", follow=True))
        finally:
            other.close()

    follower = threading.Thread(target=follow)
    follower.start()
    job = k8s.fire_cronjob("nightly")
    assert job is not None and job.startswith("nightly-")
    record = wait_for(
        lambda: (
            (w := kube.get("nightly")).message.startswith(f"scheduled '0 3 * * *'; last run {job} ") and w
        ),
        timeout=90,
        what="the run to end",
    )
    assert record.status == "running"
    assert f"last run {job} succeeded at " in record.message, record.message
    location = runs / job
    assert provenance(location)["status"] == "succeeded"
    assert (location / "outputs" / "result.txt").read_text() == "0.30000000000000004"
    assert provenance(location)["parameters"] == {"epochs": 3}
    assert "trained" in "".join(kube.logs("nightly"))
    # launched elsewhere: the CronJob is found again (its Jobs are not workloads of their own)
    kube.store.delete("nightly")
    listed = [w for w in kube.list() if w.id.startswith("nightly")]
    assert [(w.id, w.kind, w.status) for w in listed] == [("nightly", "notebook", "running")]
    assert listed[0].info == {"location": f"file://{runs}"}
    assert kube.cancel("nightly").status == "cancelled"
    follower.join(timeout=30)
    assert not follower.is_alive()
    assert followed[0] == f"[workbench] nightly: run {job}\n"
    assert 'trained {"lr": 0.1, "epochs": 3}' in "".join(followed)
    wait_for(lambda: not any(objects(k8s, "nightly").values()), what="the CronJob and ConfigMap to go")
    wait_for(lambda: k8s.get("jobs", job, group="batch") is None, what="the run's Job to go")


def test_a_notebook_too_large_for_a_configmap_is_uploaded_to_the_output(
    kube: Service, k8s: Emulator, tmp_path: Path
) -> None:
    source = write_notebook(tmp_path / "large.ipynb", BODY, filler=1_100_000)
    runs = tmp_path / "runs"
    k8s.deny("create", "jobs", "batch")
    with pytest.raises(PermissionDenied):
        kube.launch(
            {"kind": "notebook", "notebook": str(source), "output": f"file://{runs}", "name": "large"}
        )
    assert_nothing_created(kube)
    assert not any(objects(k8s, "large").values())
    assert not runs.exists()  # the upload is rolled back too, with the folders made for it
    k8s.denied.clear()
    workload = kube.launch(
        {"kind": "notebook", "notebook": str(source), "output": f"file://{runs}", "name": "large"}
    )
    configmap = objects(k8s, "large")["configmap"]
    assert set(configmap["data"]) == {"notebook.json"}
    assert (runs / "large" / "input.ipynb").read_bytes() == source.read_bytes()
    final = kube.wait(workload.id, timeout=90)
    assert final.status == "succeeded", final.message
    assert provenance(runs / "large")["status"] == "succeeded"


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        pytest.param({}, ["needs --output"], id="no-output"),
        pytest.param({"output": "/mnt/runs"}, ["not on a --volume pvc mount"], id="not-on-a-volume"),
        pytest.param(
            {"output": "file:///r", "env": {"WORKBENCH_SIGN_PROVENANCE": "1"}}, ["--sign"], id="sign"
        ),
    ],
)
def test_bad_inputs_create_nothing(
    kube: Service, k8s: Emulator, tmp_path: Path, fields: dict[str, Any], words: list[str]
) -> None:
    source = write_notebook(tmp_path / "nb.ipynb", BODY)
    with pytest.raises(SpecError) as info:
        kube.launch({"kind": "notebook", "notebook": str(source), **fields})
    for word in words:
        assert word in info.value.one_line()
    assert_nothing_created(kube)
    assert k8s.count("POST") == 0


def _job(name: str, created: str, condition: str | None = None, when: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {"startTime": created}
    if condition:
        status["conditions"] = [{"type": condition, "status": "True", "lastTransitionTime": when}]
        if condition == "Complete":
            status["completionTime"] = when
    return {"metadata": {"name": name, "creationTimestamp": created}, "status": status}


def test_a_schedules_message_says_how_its_runs_go() -> None:
    from workbench.backends.kubernetes.notebook import observe_schedule

    cronjob: dict[str, Any] = {
        "metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"schedule": "0 3 * * *"},
        "status": {},
    }
    older = _job("nb-1", "2026-01-01T03:00:00Z", "Complete", "2026-01-01T03:05:00Z")
    failed = _job("nb-2", "2026-01-02T03:00:00Z", "Failed", "2026-01-02T03:01:00Z")
    running = _job("nb-3", "2026-01-03T03:00:00Z")
    seen = observe_schedule(cronjob, [running, failed, older])
    assert seen.status == "running"
    assert seen.message == (
        "scheduled '0 3 * * *'; nb-3 running since 2026-01-03T03:00:00Z; "
        "last run nb-2 failed at 2026-01-02T03:01:00Z"
    )
    assert seen.started == 1767225600.0
    gone = {**cronjob, "status": {"lastSuccessfulTime": "2026-01-01T03:05:00Z"}}
    assert (
        observe_schedule(gone, []).message
        == "scheduled '0 3 * * *'; last run succeeded at 2026-01-01T03:05:00Z"
    )
    paused = {**cronjob, "spec": {"schedule": "@daily", "suspend": True}}
    assert observe_schedule(paused, []).message == "scheduled '@daily' (suspended); no run yet"


def test_the_failure_message_is_the_runners_not_its_last_line() -> None:
    from workbench.backends.kubernetes.notebook import failure_line

    log = (
        "workbench: executing /nb.ipynb with parameters {}\n"
        "Traceback (most recent call last):\n"
        "workbench: cell 2 failed: ValueError: bad shape\n"
        "workbench: executed notebook /workbench/run/output.ipynb\n"
        "workbench: run directory s3://bucket/runs/nb-1\n"
    )
    assert failure_line(log) == "cell 2 failed: ValueError: bad shape"
    assert failure_line("Killed\n") == "Killed"
    assert failure_line("") == ""


def test_cli_schedule_returns_at_once_and_verify_export_name_the_runs(
    kube: Service, k8s: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from workbench.cli import main

    source = write_notebook(tmp_path / "daily.ipynb", BODY)
    runs = tmp_path / "runs"
    argv = ["notebook", "run", str(source), "-p", "epochs", "5", "--output", f"file://{runs}"]
    started = time.monotonic()
    assert main([*argv, "--schedule", "@daily", "--name", "daily"]) == 0
    assert time.monotonic() - started < 30  # does not wait for a schedule that never ends
    out = capsys.readouterr()
    assert out.out == "daily\n"
    assert "daily scheduled '@daily' on kubernetes; `workbench logs -f daily` follows its runs" in out.err
    exported = kube.export("daily")
    assert [d["kind"] for d in exported] == ["NetworkPolicy", "ConfigMap", "CronJob"]
    assert exported[2]["spec"]["schedule"] == "@daily"
    notebook_json = json.loads(exported[1]["data"]["notebook.json"])
    assert notebook_json["parameters"] == {"epochs": 5}  # typed, as the run gets it
    job = k8s.fire_cronjob("daily")
    assert job is not None
    wait_for(lambda: (runs / job / "provenance.json").exists(), timeout=90, what="the run's manifest")
    wait_for(lambda: f"last run {job} succeeded" in kube.get("daily").message, timeout=30, what="the record")
    assert main(["verify", f"file://{runs}/{job}"]) == 0
    assert f"OK file://{runs}/{job}" in capsys.readouterr().out
    assert main(["verify", "daily"]) == 2
    assert "daily is a schedule; each of its runs has its own run directory" in capsys.readouterr().err
    assert main(["cancel", "daily"]) == 0


def test_verify_of_a_run_on_a_cluster_volume_says_where_it_is(kube: Service, tmp_path: Path) -> None:
    source = write_notebook(tmp_path / "nb.ipynb", BODY)
    workload = kube.launch(
        {
            "kind": "notebook",
            "notebook": str(source),
            "output": "/mnt/runs",
            "volumes": ["pvc/runs:/mnt/runs"],
            "name": "on-pvc",
        }
    )
    with pytest.raises(SpecError, match=r"the run directory of on-pvc is /mnt/runs/on-pvc on a volume"):
        kube.verify(workload.id)
