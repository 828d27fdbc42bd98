"""`train` workloads on the local backend: real torchrun, real gloo process groups."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import pytest

from workbench.errors import SpecError
from workbench.service import Service

from ...conftest import assert_nothing_created

DDP = """
import hashlib, io, os
import torch
import workbench.train as wt

ctx = wt.init()
torch.manual_seed(0)                      # the same initial weights on every rank
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(8, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.05)
data = torch.Generator().manual_seed(100 + ctx.rank)   # different data on every rank
for step in range(20):
    x = torch.randn(16, 8, generator=data)
    loss = model(x).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
buffer = io.BytesIO()
torch.save({k: v.detach().clone() for k, v in model.module.state_dict().items()}, buffer)
(ctx.output_dir / f"weights-rank{ctx.rank}.sha256").write_text(hashlib.sha256(buffer.getvalue()).hexdigest())
print(f"rank {ctx.rank}/{ctx.world_size} done, loss {loss.item():.4f}")
state = model.module.state_dict() if ctx.is_main else None
"""


def outputs(service: Service, name: str) -> Path:
    return Path(service.get(name).run_dir) / "outputs"


@pytest.mark.parametrize(("nodes", "procs"), [(1, 2), (2, 1)])
def test_every_rank_ends_with_identical_weights(service: Service, nodes: int, procs: int) -> None:
    workload = service.launch(
        {"kind": "train", "code": DDP, "nodes": nodes, "procs_per_node": procs, "get": "state"}
    )
    logs = "".join(service.logs(workload.id, follow=True))
    final = service.wait(workload.id, timeout=120)
    assert final.status == "succeeded", logs
    hashes = {p.name: p.read_text() for p in outputs(service, workload.id).glob("weights-rank*.sha256")}
    assert sorted(hashes) == ["weights-rank0.sha256", "weights-rank1.sha256"]
    assert len(set(hashes.values())) == 1, hashes
    assert "[rank 0] rank 0/2 done" in logs and "[rank 1] rank 1/2 done" in logs
    state = service.results(workload.id)["state"]
    assert sorted(state) == ["bias", "weight"] and tuple(state["weight"].shape) == (2, 8)


def test_a_failing_rank_is_named_with_its_traceback(service: Service) -> None:
    code = (
        "import os, time\n"
        "rank = int(os.environ['RANK'])\n"
        "if rank == 1:\n"
        "    raise ValueError(f'bad batch on rank {rank}')\n"
        "time.sleep(30)\n"
    )
    workload = service.launch({"kind": "train", "code": code, "procs_per_node": 2})
    final = service.wait(workload.id, timeout=120)
    assert final.status == "failed"
    assert final.message == "exited with code 1: rank 1 failed: ValueError: bad batch on rank 1"
    logs = "".join(service.logs(workload.id))
    banner = logs.index("==== rank 1 failed first; its traceback ====")
    assert "ValueError: bad batch on rank 1" in logs[banner:]
    assert "[rank 1] ValueError: bad batch on rank 1" in logs  # as it happened, prefixed


# Rank 1 is killed (SIGKILL) after the checkpoint of step 3 while rank 0 waits for it in an
# allreduce; torchrun stops rank 0, restarts both, and both resume from that checkpoint.
RESUMABLE = """
import hashlib, io, os, time
import torch
import workbench.train as wt

ctx = wt.init(timeout=20)
attempt = int(os.environ["TORCHELASTIC_RESTART_COUNT"])
torch.manual_seed(0)
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(8, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
# every rank has read it before rank 0 saves again: the next step's allreduce waits for all
state = ctx.load_checkpoint() or {"step": 0, "starts": []}
if state["step"]:
    model.module.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
starts = state["starts"] + [(attempt, state["step"])]
for step in range(state["step"], 6):
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(1000 * ctx.rank + step))
    loss = model(x).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    state = {"step": step + 1, "starts": starts, "model": model.module.state_dict(), "opt": opt.state_dict()}
    ctx.save_checkpoint(state)
    if step == KILL_AFTER and attempt == 0 and ctx.rank == 1:
        open(PIDFILE, "w").write(str(os.getpid()))
        time.sleep(60)  # killed here by the test
weights = {k: v.detach().clone() for k, v in model.module.state_dict().items()}
buffer = io.BytesIO()
torch.save(weights, buffer)
(ctx.output_dir / f"weights-rank{ctx.rank}.sha256").write_text(hashlib.sha256(buffer.getvalue()).hexdigest())
"""


def test_a_killed_rank_is_restarted_and_the_job_resumes_from_its_checkpoint(
    service: Service, tmp_path: Path
) -> None:
    """A world of two: the restarted gloo group meets again (each attempt has a rendezvous store
    of its own) and ends with the weights of a run that was never interrupted."""
    import torch

    pidfile = tmp_path / "rank1.pid"

    def launch(kill_after: int) -> str:
        code = RESUMABLE.replace("KILL_AFTER", str(kill_after)).replace("PIDFILE", repr(str(pidfile)))
        spec = {"kind": "train", "code": code, "procs_per_node": 2, "max_restarts": 1}
        return service.launch({**spec, "get": "starts,weights"}).id

    whole = launch(kill_after=-1)  # the same job, never interrupted, alongside
    killed = launch(kill_after=2)
    deadline = time.monotonic() + 90
    while not (pidfile.exists() and pidfile.read_text()):
        assert time.monotonic() < deadline, "".join(service.logs(killed))
        time.sleep(0.05)
    os.kill(int(pidfile.read_text()), signal.SIGKILL)
    for name in (killed, whole):
        final = service.wait(name, timeout=120)
        assert final.status == "succeeded", "".join(service.logs(name))
    resumed, reference = service.results(killed), service.results(whole)
    assert resumed["starts"] == [(0, 0), (1, 3)]  # attempt 1 resumed from step 3's checkpoint
    assert reference["starts"] == [(0, 0)]
    assert sorted(resumed["weights"]) == ["bias", "weight"]
    for key, value in reference["weights"].items():
        assert torch.equal(resumed["weights"][key], value), (key, resumed["weights"][key], value)
    hashes = {p.name: p.read_text() for p in outputs(service, killed).glob("weights-rank*.sha256")}
    assert sorted(hashes) == ["weights-rank0.sha256", "weights-rank1.sha256"]
    assert len(set(hashes.values())) == 1, hashes  # both ranks ended with the same weights


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"nodes": 0}, "invalid --nodes (nodes): 0 must be greater than or equal to 1"),
        (
            {"procs_per_node": 0},
            "invalid --procs-per-node (procs_per_node): 0 must be greater than or equal to 1",
        ),
        ({"resources": {"gpus": 2}}, "asks for 2 GPUs but this host has 0"),
        (
            {"max_restarts": -1},
            "invalid --max-restarts (max_restarts): -1 must be greater than or equal to 0",
        ),
    ],
)
def test_bad_input_launches_nothing(service: Service, fields: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError) as info:
        service.launch({"kind": "train", "code": "pass", **fields})
    assert message in str(info.value)
    assert_nothing_created(service)


def test_ranks_get_their_own_gpus(monkeypatch: pytest.MonkeyPatch, wb_home: Path) -> None:
    from workbench.config import load_settings

    monkeypatch.setenv("WORKBENCH_LOCAL_GPUS", "0,1,2,3")
    service = Service(load_settings())
    code = (
        "import os\n"
        "print('node sees', os.environ['CUDA_VISIBLE_DEVICES'] or '-',"
        " 'local rank', os.environ['LOCAL_RANK'])"
    )
    workload = service.launch({"kind": "train", "code": code, "nodes": 2, "resources": {"gpus": 2}})
    assert workload.gpus == ["0", "1", "2", "3"]
    final = service.wait(workload.id, timeout=120)
    logs = "".join(service.logs(workload.id))
    assert final.status == "succeeded", logs
    assert sorted(line.split("] ", 1)[1] for line in logs.splitlines() if "node sees" in line) == [
        "node sees 0,1 local rank 0",
        "node sees 2,3 local rank 0",
    ]
    service.close()


def test_helper_does_not_import_torch() -> None:
    import subprocess
    import sys

    check = "import sys, workbench.train; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", check]).returncode == 0
    assert hashlib  # used by the training code above


def test_files_left_open_by_the_code_keep_what_was_written(service: Service) -> None:
    code = (
        "import workbench.train as wt\n"
        "ctx = wt.init()\n"
        "log = open(ctx.output_dir / f'kept-{ctx.rank}.txt', 'w')\n"
        "log.write('buffered line\\n')\n"
    )
    workload = service.launch({"kind": "train", "code": code, "procs_per_node": 2})
    assert service.wait(workload.id, timeout=120).status == "succeeded"
    folder = outputs(service, workload.id)
    assert [(folder / f"kept-{rank}.txt").read_text() for rank in (0, 1)] == ["buffered line\n"] * 2


def running_ranks(service: Service, name: str) -> list[int]:
    """The pids the two ranks print (``up PID``) once both run."""
    deadline = time.monotonic() + 60
    while "".join(service.logs(name)).count(" up ") < 2:
        assert time.monotonic() < deadline, "".join(service.logs(name))
        time.sleep(0.1)
    return [int(line.split()[-1]) for line in "".join(service.logs(name)).splitlines() if " up " in line]


def test_cancel_leaves_no_rank_behind(service: Service) -> None:
    from workbench.runtime import procs

    code = "import os, time\nprint('up', os.getpid(), flush=True)\ntime.sleep(300)\n"
    workload = service.launch({"kind": "train", "code": code, "procs_per_node": 2})
    ranks = running_ranks(service, workload.id)
    assert len(ranks) == 2 and all(procs.is_alive(pid) for pid in ranks)
    assert service.cancel(workload.id).status == "cancelled"
    deadline = time.monotonic() + 30
    while any(procs.is_alive(pid) for pid in ranks):
        assert time.monotonic() < deadline, "a rank outlived its cancelled job"
        time.sleep(0.1)


def test_ranks_do_not_outlive_a_crashed_torchrun(service: Service) -> None:
    """torchrun starts each worker in a session of its own; if torchrun dies, the supervisor
    (a child subreaper) still finds and stops them."""
    from workbench.runtime import procs

    code = "import os, time\nprint('up', os.getpid(), flush=True)\ntime.sleep(300)\n"
    workload = service.launch({"kind": "train", "code": code, "procs_per_node": 2})
    ranks = running_ranks(service, workload.id)
    torchrun = int(Path(f"/proc/{ranks[0]}/stat").read_text().rsplit(")", 1)[1].split()[1])
    os.kill(torchrun, signal.SIGKILL)
    assert service.wait(workload.id, timeout=60).status == "failed"
    deadline = time.monotonic() + 30
    while any(procs.is_alive(pid) for pid in ranks):
        assert time.monotonic() < deadline, "a rank outlived its crashed torchrun"
        time.sleep(0.1)
