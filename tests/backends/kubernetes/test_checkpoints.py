"""Training on Kubernetes that survives a lost node, and restarts that add up (emulator, real torchrun).

A node's pod is evicted mid-training (the ``DisruptionTarget`` condition, then the kill, as a
preemption does): the Job recreates it without counting a failure, torchrun on the surviving
node restarts its workers, every rank resumes from the last checkpoint on the shared volume
(``--checkpoint-dir`` on a PersistentVolumeClaim), and the job ends with the weights of an
uninterrupted run. A user error that repeats runs ``--max-restarts + 1`` times on each node
(torchrun's budget), in one pod per node.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.k8s.emulator import Emulator
from workbench.backends.kubernetes.train_manifests import RDZV_PORT
from workbench.errors import SpecError
from workbench.service import Service

STEPS = 24
#: every rank trains on the same batch at each step (drawn from the step number): DDP's mean of
#: two equal gradients is exact, so the weights are those of the same loop in one process
TRAIN = f"""
import os
import time
import torch
import workbench.train as wt

ctx = wt.init(timeout=20)        # a lost peer ends a collective within 20 s, not 30 minutes
torch.manual_seed(0)
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
start = 0
state = ctx.load_checkpoint()
if state is not None:
    model.module.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    start = state["step"]
print(f"resumed from step {{start}} restart {{os.environ['TORCHELASTIC_RESTART_COUNT']}}", flush=True)
for step in range(start, {STEPS}):
    batch = torch.Generator().manual_seed(step)
    x, y = torch.randn(8, 4, generator=batch), torch.randn(8, 2, generator=batch)
    loss = (model(x) - y).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    ctx.save_checkpoint({{"step": step + 1, "model": model.module.state_dict(), "opt": opt.state_dict()}})
    time.sleep(0.3)              # the eviction lands mid-training
weights = {{k: v.tolist() for k, v in model.module.state_dict().items()}}
if ctx.is_main:
    (ctx.output_dir / "model.txt").write_text(repr(weights))
"""


def uninterrupted_weights() -> dict[str, Any]:
    """The weights of the same training, uninterrupted, in this process."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the pods (OMP_NUM_THREADS=1)
    try:
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        for step in range(STEPS):
            batch = torch.Generator().manual_seed(step)
            x, y = torch.randn(8, 4, generator=batch), torch.randn(8, 2, generator=batch)
            loss = (model(x) - y).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return {k: v.tolist() for k, v in model.state_dict().items()}
    finally:
        torch.set_num_threads(threads)


def _wait(what: str, check: Any, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return found


def _pods(k8s: Emulator, job: str) -> list[dict[str, Any]]:
    items = k8s.call(
        lambda: [p for p in k8s.store.list(("", "pods")) if p["metadata"]["name"].startswith(f"{job}-")]
    )
    return sorted(items, key=lambda p: p["metadata"]["creationTimestamp"])


def _step(checkpoint: Path) -> int:
    import torch

    try:
        return int(torch.load(checkpoint, weights_only=False)["step"])
    except (OSError, EOFError, RuntimeError, KeyError):
        return 0


def _store_host(k8s: Emulator, pods: list[dict[str, Any]]) -> str:
    """The pod whose torchrun hosts the c10d rendezvous store (on a cluster node 0; here every
    pod is on loopback, so whichever bound the port first)."""
    listeners = {
        c.pid for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.laddr.port == RDZV_PORT
    }
    for pod in pods:
        if k8s.pids(pod["metadata"]["name"]).get("main") in listeners:
            return str(pod["metadata"]["name"])
    raise AssertionError(f"no pod listens on {RDZV_PORT}: {listeners}")


def test_an_evicted_node_resumes_from_the_checkpoint_with_the_weights_of_an_uninterrupted_run(
    kube: Service, k8s: Emulator
) -> None:
    # torchrun's rendezvous drops a node after keep_alive_interval * keep_alive_max_attempt seconds
    # without its heartbeat (5 * 3 by default): 1 * 5 lets the survivor go on 10 s sooner
    k8s.node_env["PET_RDZV_CONF"] = "keep_alive_interval=1,keep_alive_max_attempt=5"
    spec = {
        "kind": "train",
        "code": TRAIN,
        "nodes": 2,
        "max_restarts": 1,
        "volumes": ["pvc/ckpt:/mnt/ckpt"],
        "checkpoint_dir": "/mnt/ckpt/elastic",
        "output": "/mnt/ckpt/out",
        "get": "weights",
        "timeout": "5m",
        "name": "elastic",
    }
    workload = kube.launch(spec)
    checkpoint = k8s.pvc_dir("ckpt") / "elastic" / "checkpoint.pt"
    _wait("the checkpoint of step 6", lambda: checkpoint.exists() and _step(checkpoint) >= 6)
    first = _pods(k8s, "elastic")
    assert len(first) == 2
    host = _store_host(k8s, first)
    victim = next(p["metadata"]["name"] for p in first if p["metadata"]["name"] != host)
    assert k8s.disrupt(victim)  # DisruptionTarget, then the kill: as a preemption does

    logs = "".join(kube.logs(workload.id, follow=True))
    final = kube.wait(workload.id, timeout=240)
    assert final.status == "succeeded", (final.message, logs)
    # the Job recreated the evicted node without counting it against the job
    pods = {p["metadata"]["name"]: p for p in _pods(k8s, "elastic")}
    assert len(pods) == 3 and victim in pods
    evicted = pods[victim]["status"]
    assert evicted["phase"] == "Failed"
    assert {"type": "DisruptionTarget", "status": "True"}.items() <= next(
        c for c in evicted["conditions"] if c["type"] == "DisruptionTarget"
    ).items()
    assert "failed" not in (k8s.get("jobs", "elastic", group="batch") or {})["status"]
    # torchrun on the surviving node restarted its workers; every rank resumed from one step
    resumed = re.findall(r"^\[rank \d\] resumed from step (\d+) restart (\d)$", logs, re.MULTILINE)
    assert resumed.count(("0", "0")) == 2, logs  # the first start of both nodes
    after = [(int(step), restart) for step, restart in resumed if step != "0"]
    assert sorted(restart for _, restart in after) == ["0", "1"], logs  # the new node; the survivor
    assert after[0][0] == after[1][0] >= 6
    # and ended with the weights of an uninterrupted run
    results = kube.results(workload.id)
    assert results["weights"] == uninterrupted_weights()
    # rank 0's outputs were published to <output>/<workload id> on the volume
    published = k8s.pvc_dir("ckpt") / "out" / "elastic" / "model.txt"
    assert published.read_text() == repr(results["weights"])


#: node 0 fails the same way every time; node 1 waits (torchrun restarts it with node 0's group)
REPEATING = """
import os
import time
index, attempt = os.environ["JOB_COMPLETION_INDEX"], os.environ["TORCHELASTIC_RESTART_COUNT"]
print(f"attempt {attempt} on node {index}", flush=True)
if index == "0":
    raise RuntimeError("the same bug every time")
time.sleep(600)
"""


def _created_pods(k8s: Emulator, job: str) -> list[str]:
    """The pods the Job controller created, from its events (pods of a failed Job are deleted)."""
    events = k8s.call(lambda: k8s.store.list(("", "events")))
    return [
        e["message"].removeprefix("Created pod: ")
        for e in events
        if e["involvedObject"]["name"] == job and e["reason"] == "SuccessfulCreate"
    ]


def test_a_repeating_user_error_runs_max_restarts_plus_one_times_in_one_pod_per_node(
    kube: Service, k8s: Emulator
) -> None:
    spec = {
        "kind": "train",
        "code": REPEATING,
        "nodes": 2,
        "max_restarts": 2,
        "volumes": ["pvc/ckpt:/mnt/ckpt"],
        "checkpoint_dir": "/mnt/ckpt/repeat",
        "name": "repeat",
    }
    workload = kube.launch(spec)
    final = kube.wait(workload.id, timeout=240)
    assert final.status == "failed"
    assert re.search(
        r"node 0 \(repeat-0-\w+\) exited with code 1: \[rank \d\] RuntimeError: the same bug every time",
        final.message,
    ), final.message
    created = _created_pods(k8s, "repeat")
    # no pod-level retry: torchrun's restarts were the only ones, one pod per node
    assert sorted(name.rsplit("-", 1)[0] for name in created) == ["repeat-0", "repeat-1"], created
    logs = "".join(kube.logs(workload.id))
    attempts = re.findall(r"^\[rank \d\] attempt (\d) on node 0$", logs, re.MULTILINE)
    assert sorted(attempts) == ["0", "1", "2"], logs  # 3 runs on node 0, each once: not 9


def test_restarts_on_several_nodes_without_a_checkpoint_dir_are_refused_before_anything_exists(
    kube: Service, k8s: Emulator
) -> None:
    with pytest.raises(SpecError) as info:
        kube.launch({"kind": "train", "code": "pass", "nodes": 2, "max_restarts": 1, "name": "nockpt"})
    line = info.value.one_line()
    assert line.startswith("--max-restarts 1 on 2 nodes needs --checkpoint-dir"), line
    assert "--volume pvc/ckpt:/mnt/ckpt --checkpoint-dir /mnt/ckpt" in line and "s3://" in line
    assert k8s.count("POST") == 0 and kube.list() == []  # nothing was created
