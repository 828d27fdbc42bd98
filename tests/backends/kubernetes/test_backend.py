"""`pod` workloads on the kubernetes backend, end to end against the API emulator.

The real `kubernetes` client talks HTTP to the emulator; its Job controller makes the pod
and its process kubelet runs the pod's command (python -m workbench.runtime.cell) as a
real process, so output really streams back.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.k8s.emulator import Emulator
from tests.k8s.fixtures import run_kubectl
from workbench.errors import BackendUnavailable, PermissionDenied, SpecError
from workbench.service import Service

LABEL = "app.kubernetes.io/managed-by=jupyter-ml-workbench"


def wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def objects(k8s: Emulator, name: str) -> tuple[object, object]:
    return k8s.get("jobs", name, group="batch"), k8s.get("configmaps", f"{name}-payload")


def test_pod_runs_streams_and_brings_results_back(kube: Service, k8s: Emulator) -> None:
    workload = kube.launch(
        {"kind": "pod", "code": "print('hello from the cluster')\ny = x + 1", "send": "x", "get": "y"},
        inputs={"x": 41},
    )
    assert workload.backend == "kubernetes" and workload.status == "pending"
    job, configmap = objects(k8s, workload.id)
    assert job is not None and configmap is not None
    owners = configmap["metadata"].get("ownerReferences", [])  # type: ignore[index]
    assert [(o["kind"], o["name"]) for o in owners] == [("Job", workload.id)]
    streamed = "".join(kube.logs(workload.id, follow=True))
    assert streamed == "hello from the cluster\n"
    final = kube.wait(workload.id, timeout=60)
    assert (final.status, final.exit_code) == ("succeeded", 0)
    assert final.started is not None and final.ended is not None
    assert kube.results(workload.id) == {"y": 42}
    assert "".join(kube.logs(workload.id)) == "hello from the cluster\n"


def test_failure_names_exit_code_and_last_line(kube: Service) -> None:
    workload = kube.launch({"kind": "pod", "code": "print('partial')\nraise ValueError('bad shape')"})
    final = kube.wait(workload.id, timeout=60)
    assert final.status == "failed"
    assert final.exit_code == 1
    assert final.message == "exited with code 1: ValueError: bad shape"
    logs = "".join(kube.logs(workload.id))
    assert "partial" in logs and "Traceback" in logs


def test_cancel_kills_the_process_and_deletes_the_objects(kube: Service, k8s: Emulator) -> None:
    workload = kube.launch({"kind": "pod", "code": "import time\nprint('up', flush=True)\ntime.sleep(300)"})
    wait_for(lambda: kube.get(workload.id).status == "running")
    wait_for(lambda: bool(k8s.live_pids()))
    pids = k8s.live_pids()
    final = kube.cancel(workload.id)
    assert final.status == "cancelled"
    wait_for(lambda: objects(k8s, workload.id) == (None, None))
    wait_for(lambda: not any(p in k8s.live_pids() for p in pids))
    kube.delete(workload.id)
    assert kube.store.list() == []


def test_timeout_is_the_jobs_deadline(kube: Service) -> None:
    workload = kube.launch({"kind": "pod", "code": "import time\ntime.sleep(300)", "timeout": "2s"})
    final = kube.wait(workload.id, timeout=60)
    assert final.status == "failed"
    assert final.message.startswith("timed out")


def test_unschedulable_request_is_refused_before_anything_exists(kube: Service, k8s: Emulator) -> None:
    with pytest.raises(SpecError) as info:
        kube.launch({"kind": "pod", "code": "pass", "resources": {"gpus": 2}})
    assert str(info.value).startswith("asks for 2 nvidia.com/gpu per pod but the largest node")
    assert kube.store.list() == []
    assert k8s.count("POST") == 0


def test_pending_reason_in_plain_words_when_nodes_cannot_be_listed(kube: Service, k8s: Emulator) -> None:
    k8s.deny("list", "nodes")
    workload = kube.launch({"kind": "pod", "code": "pass", "resources": {"gpus": 1}})
    wait_for(lambda: "Insufficient nvidia.com/gpu" in kube.get(workload.id).message)
    record = kube.get(workload.id)
    assert record.status == "pending"
    assert record.message == "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
    stream = kube.logs(workload.id, follow=True)
    assert next(stream) == f"[workbench] {workload.id} pending: {record.message}\n"
    kube.cancel(workload.id)


def test_forbidden_create_rolls_back_and_says_which_permission(kube: Service, k8s: Emulator) -> None:
    k8s.deny("create", "jobs", "batch")
    with pytest.raises(PermissionDenied) as info:
        kube.launch({"kind": "pod", "code": "pass", "name": "denied"})
    text = str(info.value)
    assert text.startswith("not allowed to create jobs in namespace 'default'")
    assert "workbench rbac --namespace default" in text
    assert objects(k8s, "denied") == (None, None)  # the ConfigMap made first was deleted again
    assert kube.store.list() == []


def test_transient_server_errors_are_retried(kube: Service, k8s: Emulator) -> None:
    k8s.inject("POST", r"/jobs$", status=500, times=2)
    workload = kube.launch({"kind": "pod", "code": "print('ok')"})
    assert kube.wait(workload.id, timeout=60).status == "succeeded"
    assert k8s.count("POST", r"/jobs$") == 3


def test_persistent_server_errors_end_in_a_clear_error_and_leave_nothing(
    kube: Service, k8s: Emulator
) -> None:
    k8s.inject("POST", r"/jobs$", status=503, times=None)
    with pytest.raises(BackendUnavailable) as info:
        kube.launch({"kind": "pod", "code": "pass", "name": "flaky"})
    assert "did not answer create jobs after 4 tries (HTTP 503" in str(info.value)
    assert objects(k8s, "flaky") == (None, None)
    assert kube.store.list() == []


def test_slow_answers_time_out_and_are_retried(
    kube: Service, k8s: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKBENCH_KUBERNETES__REQUEST_TIMEOUT", "0.5")
    from workbench.config import load_settings

    fast = Service(load_settings())
    k8s.inject("POST", r"/configmaps$", status=None, times=1, delay=1.5)
    workload = fast.launch({"kind": "pod", "code": "print('ok')"})
    assert fast.wait(workload.id, timeout=60).status == "succeeded"
    fast.close()


def test_kubectl_lists_the_workloads_pod(kube: Service, k8s: Emulator) -> None:
    workload = kube.launch({"kind": "pod", "code": "import time\ntime.sleep(300)"})
    wait_for(lambda: kube.get(workload.id).status == "running")
    result = run_kubectl(k8s, "get", "pods", "-l", LABEL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split()[0] == "NAME"
    assert any(line.startswith(f"{workload.id}-") for line in result.stdout.splitlines()[1:])


def test_workload_found_again_by_its_labels(kube: Service, k8s: Emulator) -> None:
    workload = kube.launch({"kind": "pod", "code": "print('found')", "name": "elsewhere"})
    kube.wait(workload.id, timeout=60)
    kube.store.delete("elsewhere")  # as if launched from another machine
    listed = {w.id: w for w in kube.list()}
    assert listed["elsewhere"].backend == "kubernetes"
    assert listed["elsewhere"].status == "succeeded"
    assert "".join(kube.logs("elsewhere")) == "found\n"


def test_cli_runs_on_the_cluster(kube_env: object, k8s: Emulator, tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    (folder / "job.py").write_text("import sys\nprint('args', sys.argv[1:])\n")
    result = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "run", "job.py", "--", "--lr", "0.1"],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "args ['--lr', '0.1']\n"
    listing = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "ls"], capture_output=True, text=True, check=True
    ).stdout
    assert "kubernetes" in listing and "succeeded" in listing


def test_magic_on_the_cluster_and_reattach_after_kernel_restart(kube: Service, k8s: Emulator) -> None:
    from tests.kernel import Kernel

    kernel = Kernel()
    try:
        assert kernel.run("%load_ext workbench").error is None
        assert kernel.run("x = 20").error is None
        reply = kernel.run("%%pod --send x --get y\ny = x + 1\nprint('on the cluster', y)")
        assert reply.error is None, reply
        assert reply.stdout == "on the cluster 21\n"
        assert kernel.run("print(y)").stdout == "21\n"
        launched = kernel.run(
            "%%pod --name reattach --detach\n"
            "import time\nprint('before', flush=True)\ntime.sleep(2)\nprint('after')"
        )
        assert launched.error is None, launched
        kernel.restart()
        assert kernel.run("%load_ext workbench").error is None
        assert "reattach" in kernel.run("%wb ls").stdout
        followed = kernel.run("%wb logs reattach -f")
        assert followed.stdout == "before\nafter\n"
        assert "status: succeeded" in kernel.run("%wb describe reattach").stdout
    finally:
        kernel.stop()
