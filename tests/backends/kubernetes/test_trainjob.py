"""`train --operator kubeflow` on a cluster with Kubeflow Trainer v2, end to end against the emulator.

The real `kubernetes` client creates a TrainJob; the stand-in for Kubeflow Trainer and JobSet
(tests/k8s/trainer_operator.py) makes its JobSet, headless Service and Indexed Job, whose pods
the emulator's Job controller makes with torchrun's ``PET_*`` environment from the runtime's
torch plugin; the process kubelet runs the real torchrun on every node, and the nodes meet on
``<job>-node-0-0.<job>`` (rewritten to 127.0.0.1) and train with DDP on gloo. API discovery
decides between a TrainJob and a PyTorchJob; a passed ``--timeout`` reads *timed out* on every
path (the Indexed Job, the PyTorchJob and the TrainJob).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.backends.kubernetes.test_train import DDP, FAILING, assert_trained_alike, wait_gone
from tests.k8s.emulator import Emulator
from tests.k8s.fixtures import run_kubectl
from tests.k8s.pytorch_operator import GROUP as KUBEFLOW_GROUP
from tests.k8s.pytorch_operator import install_pytorch_operator
from tests.k8s.trainer_operator import GROUP, JOBSET_GROUP, add_runtime, install_trainer_operator
from workbench.backends.kubernetes.trainjob_manifests import TOKEN_PATH
from workbench.config import load_settings
from workbench.errors import BackendUnavailable, SpecError
from workbench.service import Service

SLEEPY = "import time\nprint('started', flush=True)\ntime.sleep(300)\n"


def _objects(k8s: Emulator, name: str) -> dict[str, object]:
    return {
        "trainjob": k8s.get("trainjobs", name, group=GROUP),
        "jobset": k8s.get("jobsets", name, group=JOBSET_GROUP),
        "job": k8s.get("jobs", f"{name}-node-0", group="batch"),
        "service": k8s.get("services", name),
        "configmap": k8s.get("configmaps", f"{name}-payload"),
        "networkpolicy": k8s.get("networkpolicies", name, group="networking.k8s.io"),
    }


def _pods(k8s: Emulator, name: str) -> list[dict[str, object]]:
    def find() -> list[dict[str, object]]:
        pods = k8s.store.list(("", "pods"), "default")
        return [p for p in pods if p["metadata"]["name"].startswith(f"{name}-node-0-")]

    return list(k8s.call(find))


def _wait_running(k8s: Emulator, count: int) -> None:
    deadline = time.monotonic() + 60
    while len(k8s.live_pids()) < count:
        assert time.monotonic() < deadline, k8s.live_pids()
        time.sleep(0.1)


def test_two_nodes_train_through_a_trainjob_and_end_with_identical_weights(
    kube: Service, k8s: Emulator
) -> None:
    install_trainer_operator(k8s)
    workload = kube.launch(
        {"kind": "train", "code": DDP, "nodes": 2, "operator": "kubeflow", "get": "digest", "name": "tjddp"}
    )
    assert workload.message == "creating the TrainJob"
    job = k8s.get("trainjobs", "tjddp", group=GROUP)
    assert job is not None and job["spec"]["runtimeRef"]["name"] == "torch-distributed"
    assert k8s.get("jobs", "tjddp", group="batch") is None  # no Indexed Job of workbench's own
    assert_trained_alike(kube, workload.id)
    pods = _pods(k8s, "tjddp")
    assert len(pods) == 2
    for pod in pods:  # the runtime's pods, with workbench's labels, hardening and payload
        labels = pod["metadata"]["labels"]
        assert labels["workbench.jupyter.org/id"] == "tjddp"
        assert labels["jobset.sigs.k8s.io/jobset-name"] == "tjddp"
        spec = pod["spec"]
        (container,) = spec["containers"]
        assert container["name"] == "node"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert spec["securityContext"]["runAsNonRoot"] is True
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts[TOKEN_PATH] == "no-api-token" and "/workbench/run/payload" in mounts
        env = {e["name"] for e in container["env"]}
        assert {"PET_NNODES", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT"} <= env
    done = k8s.get("trainjobs", "tjddp", group=GROUP)
    assert done is not None
    assert [c["type"] for c in done["status"]["conditions"] if c["status"] == "True"] == [
        "Created",
        "Complete",
    ]
    assert done["status"]["jobsStatus"][0]["succeeded"] == 1
    assert [d["kind"] for d in kube.export(workload.id)] == ["NetworkPolicy", "ConfigMap", "TrainJob"]
    configmap = k8s.get("configmaps", "tjddp-payload")
    assert configmap is not None  # owned by the TrainJob: deleting it removes the payload too
    assert [r["kind"] for r in configmap["metadata"]["ownerReferences"]] == ["TrainJob"]
    kube.delete(workload.id)
    wait_gone(k8s, lambda: _objects(k8s, "tjddp"))
    assert _pods(k8s, "tjddp") == []


# which node failed is told from the order the nodes end in and their last log lines; a second
# pytest-xdist worker's load reorders them (a CI run named node 0, which only lost its peer)
@pytest.mark.alone
def test_a_failing_rank_fails_the_trainjob_naming_its_node(kube: Service, k8s: Emulator) -> None:
    install_trainer_operator(k8s)
    workload = kube.launch(
        {"kind": "train", "code": FAILING, "nodes": 2, "operator": "kubeflow", "name": "tjbroken"}
    )
    final = kube.wait(workload.id, timeout=90)
    assert final.status == "failed"
    assert re.search(
        r"node 1 \(tjbroken-node-0-1-\w+\) exited with code 1: \[rank 1\] ValueError: bad batch on rank 1",
        final.message,
    ), final.message
    deadline = time.monotonic() + 30  # rank 0 waits on its lost peer: the Job ends its pod
    while k8s.live_pids():
        assert time.monotonic() < deadline, k8s.live_pids()
        time.sleep(0.1)
    job = k8s.get("trainjobs", "tjbroken", group=GROUP)
    assert job is not None
    failed = [c for c in job["status"]["conditions"] if c["type"] == "Failed"]
    assert failed and failed[0]["status"] == "True"
    logs = "".join(kube.logs(workload.id))
    banner = logs.index("==== rank 1 failed first; its traceback ====")
    assert logs[banner:].rstrip().endswith("ValueError: bad batch on rank 1")


def test_cancel_removes_the_trainjob_jobset_jobs_pods_and_payload(kube: Service, k8s: Emulator) -> None:
    install_trainer_operator(k8s)
    workload = kube.launch(
        {"kind": "train", "code": SLEEPY, "nodes": 2, "operator": "kubeflow", "name": "tjsleepy"}
    )
    _wait_running(k8s, 2)
    assert kube.get(workload.id).status == "running"
    assert all(_objects(k8s, "tjsleepy").values()), _objects(k8s, "tjsleepy")
    assert kube.cancel(workload.id).status == "cancelled"
    wait_gone(k8s, lambda: {k: v for k, v in _objects(k8s, "tjsleepy").items()})
    assert _pods(k8s, "tjsleepy") == []


@pytest.mark.parametrize("path", ["job", "pytorchjob", "trainjob"])
def test_a_passed_timeout_reads_timed_out_on_every_path(kube: Service, k8s: Emulator, path: str) -> None:
    if path == "trainjob":
        install_trainer_operator(k8s)
    elif path == "pytorchjob":
        install_pytorch_operator(k8s)
    operator = "job" if path == "job" else "kubeflow"
    name = f"slow-{path}"
    workload = kube.launch(
        {"kind": "train", "code": SLEEPY, "nodes": 2, "operator": operator, "timeout": "3s", "name": name}
    )
    final = kube.wait(workload.id, timeout=90)
    assert final.status == "failed"
    assert final.message.startswith("timed out"), final.message
    deadline = time.monotonic() + 30  # and the nodes are stopped
    while k8s.live_pids():
        assert time.monotonic() < deadline, k8s.live_pids()
        time.sleep(0.1)


def test_discovery_prefers_the_trainjob_and_falls_back_to_the_pytorchjob(
    kube: Service, k8s: Emulator
) -> None:
    install_pytorch_operator(k8s)
    old = kube.launch({"kind": "train", "code": "v = 1", "operator": "kubeflow", "get": "v", "name": "kfold"})
    assert old.info["kubeflow_api"] == "PyTorchJob"
    assert k8s.get("pytorchjobs", "kfold", group=KUBEFLOW_GROUP) is not None
    assert kube.wait(old.id, timeout=90).status == "succeeded"
    assert kube.results(old.id) == {"v": 1}
    install_trainer_operator(k8s)  # now the cluster has both: the TrainJob wins
    new = kube.launch({"kind": "train", "code": "v = 2", "operator": "kubeflow", "get": "v", "name": "kfnew"})
    assert new.info["kubeflow_api"] == "TrainJob"
    assert k8s.get("trainjobs", "kfnew", group=GROUP) is not None
    assert k8s.get("pytorchjobs", "kfnew", group=KUBEFLOW_GROUP) is None
    assert kube.wait(new.id, timeout=90).status == "succeeded"
    assert kube.results(new.id) == {"v": 2}
    assert kube.get(old.id).status == "succeeded"  # the older workload is still read as a PyTorchJob
    kube.store.delete("kfnew")  # as if launched from another machine: found by its labels
    found = {w.id: w for w in kube.list()}
    assert found["kfnew"].status == "succeeded" and found["kfnew"].info["kubeflow_api"] == "TrainJob"


def test_runtime_is_checked_and_another_one_can_be_picked(kube: Service, k8s: Emulator) -> None:
    install_trainer_operator(k8s)
    add_runtime(k8s, "torch-tuned")
    with pytest.raises(
        SpecError, match=r"no ClusterTrainingRuntime 'nope' \(it has: torch-distributed, torch-tuned\)"
    ):
        kube.launch(
            {"kind": "train", "code": "pass", "operator": "kubeflow", "runtime": "nope", "name": "rt1"}
        )
    assert k8s.get("configmaps", "rt1-payload") is None and kube.list() == []
    workload = kube.launch(
        {"kind": "train", "code": "v = 3", "operator": "kubeflow", "runtime": "torch-tuned", "get": "v"}
    )
    job = k8s.get("trainjobs", workload.id, group=GROUP)
    assert job is not None and job["spec"]["runtimeRef"]["name"] == "torch-tuned"
    assert kube.wait(workload.id, timeout=90).status == "succeeded"
    assert kube.results(workload.id) == {"v": 3}
    k8s.deny("get", "clustertrainingruntimes", GROUP)  # cannot check: the launch goes on
    unchecked = kube.launch({"kind": "train", "code": "pass", "operator": "kubeflow", "runtime": "nope"})
    assert k8s.get("trainjobs", unchecked.id, group=GROUP) is not None


def test_runtime_needs_the_kubeflow_operator_and_trainer_v2(kube: Service, k8s: Emulator) -> None:
    with pytest.raises(
        SpecError, match="--runtime torch-x names a Kubeflow Trainer runtime: add --operator kubeflow"
    ):
        kube.launch({"kind": "train", "code": "pass", "runtime": "torch-x", "name": "rt2"})
    install_pytorch_operator(k8s)
    with pytest.raises(SpecError, match="needs Kubeflow Trainer v2; this cluster has only the v1"):
        kube.launch(
            {"kind": "train", "code": "pass", "operator": "kubeflow", "runtime": "torch-x", "name": "rt3"}
        )
    assert k8s.get("configmaps", "rt3-payload") is None and kube.list() == []


def test_no_training_operator_is_one_error_naming_what_to_install(kube: Service, k8s: Emulator) -> None:
    with pytest.raises(BackendUnavailable, match=r"serves neither trainjobs\.trainer\.kubeflow\.org") as err:
        kube.launch({"kind": "train", "code": "pass", "nodes": 2, "operator": "kubeflow", "name": "none"})
    hint = err.value.hint or ""
    assert "kubeflow/trainer.git/manifests/overlays/manager?ref=v2.3.0" in hint
    assert "overlays/runtimes?ref=v2.3.0" in hint and "drop --operator kubeflow" in hint
    assert k8s.get("configmaps", "none-payload") is None and kube.list() == []


def test_a_queued_trainjob_waits_suspended_until_admitted(kube: Service, k8s: Emulator) -> None:
    install_trainer_operator(k8s)
    workload = kube.launch(
        {"kind": "train", "code": "v = 4", "nodes": 2, "operator": "kubeflow", "queue": "team-a", "get": "v"}
    )
    job = k8s.get("trainjobs", workload.id, group=GROUP)
    assert job is not None and job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    time.sleep(1)  # the operators have had their turns: still no pod
    assert _pods(k8s, workload.id) == []
    assert kube.get(workload.id).message == "waiting to be admitted in queue 'team-a' (the Job is suspended)"
    rt = k8s.registry.by_key((GROUP, "trainjobs"))
    k8s.call(
        lambda: k8s.cluster.patch(
            rt, "default", workload.id, "application/merge-patch+json", {"spec": {"suspend": False}}
        )
    )
    assert kube.wait(workload.id, timeout=90).status == "succeeded"  # what Kueue does on admission
    assert kube.results(workload.id) == {"v": 4}


def test_doctor_reports_the_training_operator(kube_env: Path, k8s: Emulator) -> None:
    from workbench.backends.kubernetes.doctor import diagnose

    def line() -> str:
        (check,) = [c for c in diagnose(load_settings(), required=True) if c.what.startswith("training")]
        return f"{check.level} {check.detail}"

    assert line().startswith("info none (Kubeflow Trainer v2 installs with `kubectl apply --server-side")
    install_pytorch_operator(k8s)
    assert line() == "ok Kubeflow training operator v1 (PyTorchJob)"
    install_trainer_operator(k8s)
    add_runtime(k8s, "torch-tuned")
    assert line() == "ok Kubeflow Trainer v2 (TrainJob; runtimes: torch-distributed, torch-tuned)"


def test_dry_run_prints_a_trainjob_that_kubectl_applies(
    kube_env: Path, k8s: Emulator, tmp_path: Path
) -> None:
    (tmp_path / "x.py").write_text("import os\nprint('node', os.environ['PET_NODE_RANK'])\n")
    argv = [sys.executable, "-m", "workbench.cli", "train", "x.py", "--nodes", "2", "--operator", "kubeflow"]
    argv += ["--name", "gitops", "--dry-run"]
    printed = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert k8s.count() == 0  # a dry run talks to no cluster
    assert re.findall(r"^kind: (\w+)$", printed, re.MULTILINE) == ["NetworkPolicy", "ConfigMap", "TrainJob"]
    install_trainer_operator(k8s)
    applied = run_kubectl(k8s, "apply", "-f", "-", stdin=printed)
    assert applied.returncode == 0, applied.stderr
    deadline = time.monotonic() + 60
    while "Complete" not in _true_conditions(k8s, "gitops"):
        assert time.monotonic() < deadline, k8s.get("trainjobs", "gitops", group=GROUP)
        time.sleep(0.1)


def _true_conditions(k8s: Emulator, name: str) -> list[str]:
    job = k8s.get("trainjobs", name, group=GROUP) or {}
    return [c["type"] for c in (job.get("status") or {}).get("conditions") or [] if c["status"] == "True"]
