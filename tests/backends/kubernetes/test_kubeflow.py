"""`train --operator kubeflow` on a cluster with only the v1 training operator, end to end.

API discovery finds ``pytorchjobs.kubeflow.org`` and no Kubeflow Trainer v2 (whose TrainJob
path is tests/backends/kubernetes/test_trainjob.py), so the real `kubernetes` client creates a
PyTorchJob; the stand-in for the training operator (tests/k8s/pytorch_operator.py) makes its
master and worker pods with torchrun's ``PET_*`` environment and a headless Service for each,
and the process kubelet runs the real torchrun on every node: the nodes meet on the master
(``<job>-master-0``, rewritten to 127.0.0.1) and train with DDP on gloo.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.backends.kubernetes.test_train import DDP, FAILING, assert_trained_alike, wait_gone
from tests.k8s.emulator import Emulator
from tests.k8s.pytorch_operator import GROUP, PyTorchOperator, install_pytorch_operator
from workbench.service import Service


@pytest.fixture
def operator(k8s: Emulator) -> PyTorchOperator:
    return install_pytorch_operator(k8s)


def _objects(k8s: Emulator, name: str) -> dict[str, object]:
    return {
        "pytorchjob": k8s.get("pytorchjobs", name, group=GROUP),
        "master": k8s.get("pods", f"{name}-master-0"),
        "worker": k8s.get("pods", f"{name}-worker-0"),
        "master service": k8s.get("services", f"{name}-master-0"),
        "worker service": k8s.get("services", f"{name}-worker-0"),
        "configmap": k8s.get("configmaps", f"{name}-payload"),
    }


def _gone(k8s: Emulator, name: str) -> None:
    wait_gone(k8s, lambda: _objects(k8s, name))


def test_two_nodes_train_through_a_pytorchjob_and_end_with_identical_weights(
    kube: Service, k8s: Emulator, operator: PyTorchOperator
) -> None:
    workload = kube.launch(
        {"kind": "train", "code": DDP, "nodes": 2, "operator": "kubeflow", "get": "digest", "name": "kfddp"}
    )
    assert workload.info["kubeflow_api"] == "PyTorchJob" and workload.message == "creating the PyTorchJob"
    job = k8s.get("pytorchjobs", "kfddp", group=GROUP)
    assert job is not None and sorted(job["spec"]["pytorchReplicaSpecs"]) == ["Master", "Worker"]
    assert k8s.get("jobs", "kfddp", group="batch") is None and k8s.get("services", "kfddp") is None
    assert_trained_alike(kube, workload.id)
    job = k8s.get("pytorchjobs", "kfddp", group=GROUP)
    assert job is not None
    assert job["status"]["replicaStatuses"]["Master"]["succeeded"] == 1
    assert [d["kind"] for d in kube.export(workload.id)] == ["NetworkPolicy", "ConfigMap", "PyTorchJob"]
    # the payload is owned by the PyTorchJob, so the operator's TTL would remove it too
    configmap = k8s.get("configmaps", "kfddp-payload")
    assert configmap is not None
    assert [r["kind"] for r in configmap["metadata"]["ownerReferences"]] == ["PyTorchJob"]
    kube.delete(workload.id)
    _gone(k8s, "kfddp")


# which node failed is told from the order the nodes end in and their last log lines; a second
# pytest-xdist worker's load reorders them (a CI run named node 0, which only lost its peer)
@pytest.mark.alone
def test_a_failing_rank_fails_the_pytorchjob_naming_its_node(
    kube: Service, k8s: Emulator, operator: PyTorchOperator
) -> None:
    workload = kube.launch(
        {"kind": "train", "code": FAILING, "nodes": 2, "operator": "kubeflow", "name": "kfbroken"}
    )
    final = kube.wait(workload.id, timeout=90)
    assert final.status == "failed"
    assert re.search(
        r"node 1 \(kfbroken-worker-0\) exited with code 1: \[rank 1\] ValueError: bad batch on rank 1",
        final.message,
    ), final.message
    # rank 0 would wait for its lost peer until a gloo timeout: the operator stops the master
    deadline = time.monotonic() + 30
    while k8s.live_pids():
        assert time.monotonic() < deadline, k8s.live_pids()
        time.sleep(0.1)
    assert k8s.get("pods", "kfbroken-master-0") is None
    logs = "".join(kube.logs(workload.id))
    assert "[rank 1] ValueError: bad batch on rank 1" in logs
    banner = logs.index("==== rank 1 failed first; its traceback ====")
    assert logs[banner:].rstrip().endswith("ValueError: bad batch on rank 1")
    followed = "".join(kube.logs(workload.id, follow=True))
    assert followed[followed.index("==== rank 1 failed first") :] == logs[banner:]


def test_cancel_removes_the_pytorchjob_its_pods_services_and_payload(
    kube: Service, k8s: Emulator, operator: PyTorchOperator
) -> None:
    code = "import time\nprint('started', flush=True)\ntime.sleep(300)\n"
    workload = kube.launch(
        {"kind": "train", "code": code, "nodes": 2, "operator": "kubeflow", "name": "kfsleepy"}
    )
    deadline = time.monotonic() + 60
    while len(k8s.live_pids()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert kube.get(workload.id).status == "running"
    assert all(_objects(k8s, "kfsleepy").values()), _objects(k8s, "kfsleepy")
    assert kube.cancel(workload.id).status == "cancelled"
    _gone(k8s, "kfsleepy")
