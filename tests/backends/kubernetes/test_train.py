"""`train` workloads on the Kubernetes backend, end to end against the API emulator.

Every node is a pod of an Indexed Job whose process kubelet runs the real torchrun: the
nodes meet through c10d rendezvous on ``<job>-0.<service>:29400`` (rewritten to 127.0.0.1,
where every emulated pod lives) and train with DDP on gloo.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.k8s.emulator import Emulator
from tests.k8s.fixtures import run_kubectl
from workbench.errors import BackendUnavailable
from workbench.service import Service

DDP = """
import hashlib
import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(rank)                    # different initial weights: DDP broadcasts rank 0's
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
data = torch.Generator().manual_seed(100 + rank)   # different data on every rank
for step in range(10):
    loss = model(torch.randn(8, 4, generator=data)).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
state = {k: v.detach().clone() for k, v in model.module.state_dict().items()}
digest = hashlib.sha256(repr([(k, v.tolist()) for k, v in sorted(state.items())]).encode()).hexdigest()
print(f"weights {digest} world {dist.get_world_size()}")
"""

FAILING = """
import os
import torch.distributed as dist

dist.init_process_group("gloo")
if dist.get_rank() == 1:
    raise ValueError("bad batch on rank 1")
dist.barrier()
"""


def _objects(k8s: Emulator, name: str) -> dict[str, object]:
    return {
        "job": k8s.get("jobs", name, group="batch"),
        "service": k8s.get("services", name),
        "configmap": k8s.get("configmaps", f"{name}-payload"),
    }


def wait_gone(k8s: Emulator, objects: Callable[[], dict[str, object]], timeout: float = 30) -> None:
    """Wait until none of ``objects()`` exists and no pod process is left."""
    deadline = time.monotonic() + timeout
    while any(objects().values()) or k8s.live_pids():
        assert time.monotonic() < deadline, (objects(), k8s.live_pids())
        time.sleep(0.1)


def _gone(k8s: Emulator, name: str) -> None:
    wait_gone(k8s, lambda: _objects(k8s, name))


def assert_trained_alike(kube: Service, name: str) -> None:
    """Follow a 2-rank DDP run to success: both ranks end with the same weights, rank 0's come back."""
    logs = "".join(kube.logs(name, follow=True))
    final = kube.wait(name, timeout=90)
    assert final.status == "succeeded", (final.message, logs)
    digests = dict(re.findall(r"^\[rank (\d)\] weights ([0-9a-f]{64}) world 2$", logs, re.MULTILINE))
    assert sorted(digests) == ["0", "1"], logs
    assert digests["0"] == digests["1"]
    assert "workbench-results" not in logs  # rank 0's results line is taken out
    assert kube.results(name) == {"digest": digests["0"]}


def test_two_nodes_train_with_ddp_and_end_with_identical_weights(kube: Service, k8s: Emulator) -> None:
    workload = kube.launch({"kind": "train", "code": DDP, "nodes": 2, "get": "digest", "name": "ddp"})
    assert workload.kind == "train"
    service = k8s.get("services", "ddp")
    assert service is not None and service["spec"]["clusterIP"] == "None"
    assert_trained_alike(kube, workload.id)
    assert [d["kind"] for d in kube.export(workload.id)] == ["NetworkPolicy", "ConfigMap", "Service", "Job"]
    kube.delete(workload.id)
    _gone(k8s, "ddp")


# which node failed is told from the order the nodes end in and their last log lines; a second
# pytest-xdist worker's load reorders them (a CI run named node 0, which only lost its peer)
@pytest.mark.alone
def test_a_failing_rank_fails_the_job_naming_it(kube: Service, k8s: Emulator) -> None:
    workload = kube.launch({"kind": "train", "code": FAILING, "nodes": 2, "name": "broken"})
    final = kube.wait(workload.id, timeout=90)
    assert final.status == "failed"
    assert re.search(
        r"node \d \(broken-\d-\w+\) exited with code 1: \[rank 1\] ValueError: bad batch on rank 1",
        final.message,
    ), final.message
    logs = "".join(kube.logs(workload.id))
    assert "[rank 1] ValueError: bad batch on rank 1" in logs  # as it happened, prefixed
    banner = logs.index("==== rank 1 failed first; its traceback ====")  # at the end, as locally
    assert logs[banner:].splitlines()[1] == "Traceback (most recent call last):"
    assert logs[banner:].rstrip().endswith("ValueError: bad batch on rank 1")
    followed = "".join(kube.logs(workload.id, follow=True))
    assert followed[followed.index("==== rank 1 failed first") :] == logs[banner:]


def test_the_banner_shows_the_rank_whose_traceback_came_first() -> None:
    from workbench.backends.kubernetes.train import traceback_banner

    log = (
        "[rank 0] step 1\n"
        "[rank 1] Traceback (most recent call last):\n"
        '[rank 0] Traceback (most recent call last):\n[rank 1]   File "cell", line 3\n'
        "[rank 1] ValueError: first\n"
        "[rank 0] RuntimeError: peer went away\n"
        "not from a rank\n"
    )
    assert traceback_banner(log) == (
        "\n==== rank 1 failed first; its traceback ====\n"
        'Traceback (most recent call last):\n  File "cell", line 3\nValueError: first\n'
    )
    assert traceback_banner("[rank 0] all good\n") == ""


def test_cancel_removes_every_object_and_process(kube: Service, k8s: Emulator) -> None:
    code = "import time\nprint('started', flush=True)\ntime.sleep(300)\n"
    workload = kube.launch({"kind": "train", "code": code, "nodes": 2, "name": "sleepy"})
    deadline = time.monotonic() + 60
    while len(k8s.live_pids()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert kube.cancel(workload.id).status == "cancelled"
    _gone(k8s, "sleepy")


def test_kubeflow_without_its_crd_is_a_clear_error_and_leaves_nothing(kube: Service, k8s: Emulator) -> None:
    with pytest.raises(BackendUnavailable, match="the Kubeflow training operator is not installed") as err:
        kube.launch({"kind": "train", "code": "pass", "nodes": 2, "operator": "kubeflow", "name": "kf"})
    assert "training-operator" in (err.value.hint or "")
    assert k8s.get("configmaps", "kf-payload") is None
    assert kube.list() == []


# two torchrun nodes that must both finish within 60 s: 4 s alone, but a CI run under a second
# pytest-xdist worker's load saw the Job not done after 60 s (cause not found)
@pytest.mark.alone
def test_dry_run_prints_a_service_and_an_indexed_job_that_kubectl_applies(
    kube_env: object, k8s: Emulator, tmp_path: Path
) -> None:
    (tmp_path / "x.py").write_text("import os\nprint('node', os.environ['JOB_COMPLETION_INDEX'])\n")
    argv = [
        sys.executable,
        "-m",
        "workbench.cli",
        "train",
        "x.py",
        "--nodes",
        "2",
        "--name",
        "gitops",
        "--dry-run",
    ]
    printed = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert k8s.count() == 0  # a dry run talks to no cluster
    assert re.findall(r"^kind: (\w+)$", printed, re.MULTILINE) == [
        "NetworkPolicy",
        "ConfigMap",
        "Service",
        "Job",
    ]
    assert "completionMode: Indexed" in printed and "subdomain: gitops" in printed
    applied = run_kubectl(k8s, "apply", "-f", "-", stdin=printed)
    assert applied.returncode == 0, applied.stderr
    deadline = time.monotonic() + 60
    while (k8s.get("jobs", "gitops", group="batch") or {}).get("status", {}).get("succeeded") != 2:
        assert time.monotonic() < deadline, k8s.get("jobs", "gitops", group="batch")
        time.sleep(0.1)


# with the logs denied, the failing node is told by which node ended first: a second pytest-xdist
# worker's load can let node 1 (which only lost its peer) end in an earlier second than node 0
@pytest.mark.alone
def test_a_missing_get_value_under_torchrun_reaches_the_status_through_the_termination_message(
    kube: Service, k8s: Emulator
) -> None:
    # torchrun turns the runner's own exit code (3) into 1: the reason travels in rank 0's
    # termination message, and reaches the status even when the logs cannot be read
    k8s.deny("get", "pods/log")
    workload = kube.launch(
        {"kind": "train", "code": "w = 1", "nodes": 2, "get": "missing_name", "name": "noget"}
    )
    final = kube.wait(workload.id, timeout=90)
    assert final.status == "failed"
    assert re.fullmatch(
        r"node \d \(noget-\d-\w+\) exited with code 1: --get missing_name: not defined when the code "
        r"finished; assign it in the cell or drop it from --get",
        final.message,
    ), final.message
