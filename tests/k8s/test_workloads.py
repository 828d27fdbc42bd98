"""The emulator's controllers and process kubelet: Jobs and pods that really run."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from kubernetes.client import ApiException

from tests.k8s import Emulator, api_client
from tests.k8s.helpers import PY, job, job_condition, job_pods, phase, pid_gone, pod, wait_for
from tests.k8s.helpers import status_body as body


def test_job_runs_a_real_process_and_completes(
    core: kubernetes.client.CoreV1Api, batch: kubernetes.client.BatchV1Api
) -> None:
    batch.create_namespaced_job("default", job("hello", "print('hello'); import sys; sys.exit(0)"))
    assert wait_for(lambda: job_condition(batch, "hello"), what="job to finish") == "Complete"
    pods = job_pods(core, "hello")
    assert len(pods) == 1
    p = pods[0]
    assert p.metadata.name.startswith("hello-")
    assert p.metadata.owner_references[0].kind == "Job" and p.metadata.owner_references[0].controller
    assert (
        p.metadata.labels["batch.kubernetes.io/job-name"] == "hello" and p.metadata.labels["app"] == "hello"
    )
    assert p.status.phase == "Succeeded"
    assert p.status.container_statuses[0].state.terminated.exit_code == 0
    assert p.status.container_statuses[0].state.terminated.reason == "Completed"
    assert core.read_namespaced_pod_log(p.metadata.name, "default") == "hello\n"
    status = batch.read_namespaced_job("hello", "default").status
    assert status.succeeded == 1 and status.start_time and status.completion_time and not status.active
    reasons = {
        e.reason
        for e in core.list_namespaced_event(
            "default", field_selector=f"involvedObject.name={p.metadata.name}"
        ).items
    }
    assert {"Scheduled", "Pulled", "Created", "Started"} <= reasons


def test_failing_job_retries_up_to_backoff_limit(
    core: kubernetes.client.CoreV1Api, batch: kubernetes.client.BatchV1Api
) -> None:
    batch.create_namespaced_job(
        "default", job("fails", "import sys; print('boom'); sys.exit(2)", backoffLimit=1)
    )
    assert wait_for(lambda: job_condition(batch, "fails"), what="job to fail") == "Failed"
    pods = job_pods(core, "fails")
    assert len(pods) == 2 and {p.status.phase for p in pods} == {"Failed"}
    assert pods[0].status.container_statuses[0].state.terminated.exit_code == 2
    status = batch.read_namespaced_job("fails", "default").status
    failed = next(c for c in status.conditions if c.type == "Failed")
    assert failed.reason == "BackoffLimitExceeded" and status.failed == 2


def test_indexed_job_gives_each_pod_its_index(
    core: kubernetes.client.CoreV1Api, batch: kubernetes.client.BatchV1Api
) -> None:
    core.create_namespaced_service(
        "default",
        {"metadata": {"name": "idx-svc"}, "spec": {"clusterIP": "None", "selector": {"app": "idx"}}},
    )
    code = (
        "import os; print(os.environ['JOB_COMPLETION_INDEX'], os.environ['HOSTNAME'], os.environ['MASTER'])"
    )
    spec = job(
        "idx", code, completions=2, parallelism=2, completionMode="Indexed", pod={"subdomain": "idx-svc"}
    )
    env = [{"name": "MASTER", "value": "idx-0.idx-svc.default.svc.cluster.local:29500"}]
    spec["spec"]["template"]["spec"]["containers"][0]["env"] = env
    batch.create_namespaced_job("default", spec)
    assert wait_for(lambda: job_condition(batch, "idx")) == "Complete"
    pods = job_pods(core, "idx")
    logs = sorted(core.read_namespaced_pod_log(p.metadata.name, "default") for p in pods)
    assert logs == ["0 idx-0 127.0.0.1:29500\n", "1 idx-1 127.0.0.1:29500\n"]
    assert {p.spec.subdomain for p in pods} == {"idx-svc"}
    assert batch.read_namespaced_job("idx", "default").status.completed_indexes == "0-1"


def test_configmap_volume_and_path_translation(k8s: Emulator, core: kubernetes.client.CoreV1Api) -> None:
    script = (
        "import os, pathlib\n"
        "print(pathlib.Path(os.environ['DATA'], 'msg.txt').read_text())\n"
        "print(os.getcwd().endswith('/work/out'))\n"
    )
    core.create_namespaced_config_map(
        "default",
        {"metadata": {"name": "payload"}, "data": {"main.py": script, "msg.txt": "from the configmap"}},
    )
    spec = pod(
        "runner",
        [PY, "/payload/main.py"],
        container={
            "workingDir": "/work/out",
            "env": [{"name": "DATA", "value": "/payload"}],
            "volumeMounts": [
                {"name": "payload", "mountPath": "/payload"},
                {"name": "out", "mountPath": "/work/out"},
            ],
        },
        volumes=[{"name": "payload", "configMap": {"name": "payload"}}, {"name": "out", "emptyDir": {}}],
    )
    core.create_namespaced_pod("default", spec)
    wait_for(lambda: core.read_namespaced_pod("runner", "default").status.phase in ("Succeeded", "Failed"))
    assert core.read_namespaced_pod_log("runner", "default") == "from the configmap\nTrue\n"
    assert core.read_namespaced_pod("runner", "default").status.phase == "Succeeded"


def test_follow_log_streams_before_the_process_ends(
    core: kubernetes.client.CoreV1Api, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    code = (
        f"import pathlib, time\nprint('first', flush=True)\nwhile not pathlib.Path({str(gate)!r}).exists(): "
        "time.sleep(0.02)\nprint('second', flush=True)"
    )
    core.create_namespaced_pod("default", pod("talker", [PY, "-c", code]))
    wait_for(lambda: core.read_namespaced_pod("talker", "default").status.phase == "Running")
    stream = core.read_namespaced_pod_log(
        "talker", "default", follow=True, _preload_content=False, _request_timeout=10
    )
    chunks = stream.stream(amt=None)
    received = b""
    while b"first\n" not in received:
        received += next(chunks)
    assert core.read_namespaced_pod("talker", "default").status.phase == "Running"
    gate.touch()
    for chunk in chunks:
        received += chunk
    assert received == b"first\nsecond\n"
    assert stream.headers["Content-Type"].startswith("text/plain")


def test_log_errors(core: kubernetes.client.CoreV1Api) -> None:
    core.create_namespaced_pod(
        "default",
        pod(
            "stuck",
            [PY, "-c", "pass"],
            container={
                "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "missing", "key": "t"}}}]
            },
        ),
    )

    def waiting() -> Any:
        statuses = core.read_namespaced_pod("stuck", "default").status.container_statuses
        return (
            statuses
            and statuses[0].state.waiting
            and statuses[0].state.waiting.reason == "CreateContainerConfigError"
            and statuses[0].state.waiting
        )

    assert wait_for(waiting).message == 'secret "missing" not found'
    with pytest.raises(ApiException) as not_started:
        core.read_namespaced_pod_log("stuck", "default")
    assert not_started.value.status == 400
    assert (
        body(not_started.value)["message"]
        == 'container "main" in pod "stuck" is waiting to start: CreateContainerConfigError'
    )
    with pytest.raises(ApiException) as bad_container:
        core.read_namespaced_pod_log("stuck", "default", container="other")
    assert body(bad_container.value)["message"] == "container other is not valid for pod stuck"
    core.create_namespaced_secret("default", {"metadata": {"name": "missing"}, "stringData": {"t": "s3cret"}})
    wait_for(
        lambda: core.read_namespaced_pod("stuck", "default").status.phase == "Succeeded",
        what="start once the secret exists",
    )


def test_image_pull_backoff(k8s: Emulator, core: kubernetes.client.CoreV1Api) -> None:
    k8s.bad_images.add("registry.example/missing:1")
    core.create_namespaced_pod(
        "default", pod("pull", [PY, "-c", "pass"], container={"image": "registry.example/missing:1"})
    )

    def reason() -> str | None:
        statuses = core.read_namespaced_pod("pull", "default").status.container_statuses or []
        return statuses[0].state.waiting.reason if statuses and statuses[0].state.waiting else None

    assert wait_for(reason) == "ImagePullBackOff"
    events = core.list_namespaced_event(
        "default", field_selector="involvedObject.name=pull,reason=Failed"
    ).items
    assert events and events[0].message.startswith('Failed to pull image "registry.example/missing:1"')
    assert core.read_namespaced_pod("pull", "default").status.phase == "Pending"


def test_deleting_a_job_in_background_kills_its_process(
    k8s: Emulator, core: kubernetes.client.CoreV1Api, batch: kubernetes.client.BatchV1Api
) -> None:
    batch.create_namespaced_job("default", job("sleeper", "import time; time.sleep(60)"))
    running = wait_for(lambda: [p for p in job_pods(core, "sleeper") if p.status.phase == "Running"])
    name = running[0].metadata.name
    pid = k8s.pids(name)["main"]
    assert not pid_gone(pid)
    batch.delete_namespaced_job("sleeper", "default", propagation_policy="Background", grace_period_seconds=5)
    wait_for(lambda: pid_gone(pid), what="the pod's process to die")
    wait_for(lambda: not job_pods(core, "sleeper"), what="the pod to be garbage collected")
    killing = core.list_namespaced_event(
        "default", field_selector=f"involvedObject.name={name},reason=Killing"
    ).items
    assert killing and killing[0].message == "Stopping container main"


def test_deleting_a_job_without_policy_orphans_its_pods(
    core: kubernetes.client.CoreV1Api, batch: kubernetes.client.BatchV1Api
) -> None:
    batch.create_namespaced_job("default", job("orphaner", "pass"))
    wait_for(lambda: job_condition(batch, "orphaner"))
    batch.delete_namespaced_job("orphaner", "default")
    # orphaning is an act of the garbage collector: it takes the owner reference away
    wait_for(lambda: all(not p.metadata.owner_references for p in job_pods(core, "orphaner")))
    wait_for(lambda: not batch.list_namespaced_job("default", field_selector="metadata.name=orphaner").items)
    pods = job_pods(core, "orphaner")
    assert len(pods) == 1 and not pods[0].metadata.owner_references


def test_suspended_job_waits_until_resumed(
    core: kubernetes.client.CoreV1Api, batch: kubernetes.client.BatchV1Api
) -> None:
    batch.create_namespaced_job("default", job("later", "print('resumed')", suspend=True))

    def suspended() -> bool:  # the controller has seen the Job, and made no pod for it
        conditions = batch.read_namespaced_job("later", "default").status.conditions or []
        return any(c.type == "Suspended" and c.status == "True" for c in conditions)

    wait_for(suspended)
    assert job_pods(core, "later") == []
    batch.patch_namespaced_job("later", "default", {"spec": {"suspend": False}})
    assert wait_for(lambda: job_condition(batch, "later")) == "Complete"
    assert core.read_namespaced_pod_log(job_pods(core, "later")[0].metadata.name, "default") == "resumed\n"


def test_deadline_and_ttl(core: kubernetes.client.CoreV1Api, batch: kubernetes.client.BatchV1Api) -> None:
    batch.create_namespaced_job(
        "default", job("slow", "import time; time.sleep(60)", activeDeadlineSeconds=1)
    )
    assert wait_for(lambda: job_condition(batch, "slow")) == "Failed"
    cond = next(
        c for c in batch.read_namespaced_job("slow", "default").status.conditions if c.type == "Failed"
    )
    assert cond.reason == "DeadlineExceeded"
    wait_for(lambda: not job_pods(core, "slow"), what="deadline to delete the pod")
    batch.create_namespaced_job("default", job("brief", "pass", ttlSecondsAfterFinished=0))
    wait_for(
        lambda: "brief" not in [j.metadata.name for j in batch.list_namespaced_job("default").items],
        what="TTL",
    )
    wait_for(lambda: not job_pods(core, "brief"), what="TTL to collect the pod")


def test_stop_kills_every_pod_process() -> None:
    emulator = Emulator().start()
    client = api_client(emulator)
    try:
        kubernetes.client.CoreV1Api(client).create_namespaced_pod(
            "default", pod("lingering", ["sleep", "60"])
        )
        pid = wait_for(lambda: emulator.pids("lingering").get("main"))
        root = emulator.root
    finally:
        client.close()
        emulator.stop()
    assert pid_gone(pid)
    assert not root.exists()


def test_nested_mounts_shm_and_binary_data(k8s: Emulator, core: kubernetes.client.CoreV1Api) -> None:
    """The workbench layout: an emptyDir run dir holding a ConfigMap payload and an outputs dir."""
    code = (
        "import os, sys, pathlib\n"
        "run = pathlib.Path(sys.argv[1])\n"
        "print(sorted(p.name for p in run.iterdir()))\n"
        "print((run / 'payload' / 'blob.bin').read_bytes() == bytes(range(256)))\n"
        "print(os.environ['RUN_DIR'] == str(run), os.environ['POD'], os.environ['TEAM'])\n"
        "pathlib.Path('result.txt').write_text('done')\n"
    )
    core.create_namespaced_config_map(
        "default",
        {
            "metadata": {"name": "payload"},
            "data": {"main.py": code},
            "binaryData": {"blob.bin": base64.b64encode(bytes(range(256))).decode()},
        },
    )
    spec = pod(
        "nested",
        [PY, "/workbench/run/payload/main.py", "/workbench/run"],
        {"team": "ml"},
        container={
            "workingDir": "/workbench/run/outputs",
            "env": [
                {"name": "RUN_DIR", "value": "/workbench/run"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}},
            ],
            "volumeMounts": [
                {"name": "run", "mountPath": "/workbench/run"},
                {"name": "payload", "mountPath": "/workbench/run/payload", "readOnly": True},
                {"name": "outputs", "mountPath": "/workbench/run/outputs"},
                {"name": "shm", "mountPath": "/dev/shm"},
            ],
        },
        volumes=[
            {"name": "run", "emptyDir": {}},
            {"name": "payload", "configMap": {"name": "payload"}},
            {"name": "outputs", "emptyDir": {}},
            {"name": "shm", "emptyDir": {"medium": "Memory"}},
        ],
    )
    core.create_namespaced_pod("default", spec)
    wait_for(lambda: phase(core, "nested") in ("Succeeded", "Failed"))
    assert (
        core.read_namespaced_pod_log("nested", "default") == "['outputs', 'payload']\nTrue\nTrue nested ml\n"
    )
    pod_dir = k8s.pod_dir("nested")
    assert pod_dir is not None
    assert (pod_dir / "rootfs/workbench/run/outputs/result.txt").read_text() == "done"


def test_pvc_data_outlives_the_pod(k8s: Emulator, core: kubernetes.client.CoreV1Api) -> None:
    volume = {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "shared"}}]}
    mount = {"volumeMounts": [{"name": "data", "mountPath": "/data"}]}
    write = "import pathlib; pathlib.Path('/data/x.txt').write_text('kept')"
    core.create_namespaced_pod("default", pod("writer", [PY, "-c", write], container=mount, **volume))
    wait_for(lambda: phase(core, "writer") == "Succeeded")
    core.delete_namespaced_pod("writer", "default")
    read = "import pathlib; print(pathlib.Path('/data/x.txt').read_text())"
    core.create_namespaced_pod("default", pod("reader", [PY, "-c", read], container=mount, **volume))
    wait_for(lambda: phase(core, "reader") == "Succeeded")
    assert core.read_namespaced_pod_log("reader", "default") == "kept\n"
    assert (k8s.pvc_dir("shared") / "x.txt").read_text() == "kept"


def test_pod_deletion_honours_the_grace_period(
    k8s: Emulator, core: kubernetes.client.CoreV1Api, tmp_path: Path
) -> None:
    termed = tmp_path / "termed"
    stubborn = (
        "import signal, time\n"
        f"signal.signal(signal.SIGTERM, lambda *_: open({str(termed)!r}, 'w').close())\n"
        "print('up', flush=True)\n"
        "while True:\n"
        "    time.sleep(60)\n"
    )
    core.create_namespaced_pod("default", pod("stubborn", [PY, "-c", stubborn]))
    wait_for(lambda: core.read_namespaced_pod_log("stubborn", "default") == "up\n")
    pid = k8s.pids("stubborn")["main"]
    started = time.monotonic()
    deleted = core.delete_namespaced_pod("stubborn", "default", grace_period_seconds=2)
    assert deleted.metadata.deletion_timestamp is not None
    wait_for(termed.exists, what="SIGTERM to reach the container (which ignores it)")
    assert not pid_gone(pid), "SIGTERM is ignored, so the process lives until the grace period ends"
    wait_for(lambda: pid_gone(pid), what="SIGKILL after the grace period")
    assert time.monotonic() - started >= 2.0
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_pod("stubborn", "default")
    assert gone.value.status == 404


def test_pod_failure_policy_fails_the_job_at_once(
    core: kubernetes.client.CoreV1Api, batch: kubernetes.client.BatchV1Api
) -> None:
    policy = {
        "rules": [
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [3]}}
        ]
    }
    batch.create_namespaced_job(
        "default", job("nogo", "raise SystemExit(3)", backoffLimit=4, podFailurePolicy=policy)
    )
    assert wait_for(lambda: job_condition(batch, "nogo")) == "Failed"
    failed = next(
        c for c in batch.read_namespaced_job("nogo", "default").status.conditions if c.type == "Failed"
    )
    assert failed.reason == "PodFailurePolicy"
    assert "failed with exit code 3 matching FailJob rule at index 0" in failed.message
    assert len(job_pods(core, "nogo")) == 1


def test_on_failure_restarts_in_place(
    core: kubernetes.client.CoreV1Api, batch: kubernetes.client.BatchV1Api
) -> None:
    spec = job("flaky", "print('try'); raise SystemExit(1)", backoffLimit=2)
    spec["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    batch.create_namespaced_job("default", spec)
    assert wait_for(lambda: job_condition(batch, "flaky")) == "Failed"
    assert len(job_pods(core, "flaky")) <= 1  # retried by restarting the container, not by new pods
    reason = next(
        c for c in batch.read_namespaced_job("flaky", "default").status.conditions if c.type == "Failed"
    )
    assert reason.reason == "BackoffLimitExceeded"
