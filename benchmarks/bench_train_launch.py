"""B5: `workbench train` launch overhead against the same `torchrun` typed by hand.

A tiny DDP job (2 processes, gloo, 20 steps) runs both ways, alternating, five times each:
``workbench train job.py --procs-per-node 2`` (CLI → supervisor → torchrun → ranks, output
streamed back, exit code) and ``torchrun --standalone --nproc-per-node=2 job.py``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import _common

RUNS = 5
JOB = """
import os
import sys

import torch
import torch.distributed as dist

dist.init_process_group("gloo")
torch.manual_seed(0)
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(16, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
for _ in range(20):
    loss = model(torch.randn(32, 16)).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
print("rank", dist.get_rank(), "loss", round(loss.item(), 4))
dist.barrier()
dist.destroy_process_group()
# torch 2.13's gloo can abort at interpreter teardown ("terminate called without an active
# exception"); leave without it, as workbench's runner does
sys.stdout.flush()
os._exit(0)
"""


def timed(argv: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise _common.BenchError(f"{argv[:3]} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return elapsed


def main() -> None:
    bin_dir = Path(sys.executable).parent
    with _common.isolated_home("b5") as tmp:
        (tmp / "job.py").write_text(JOB)
        ours_cmd = [str(bin_dir / "workbench"), "train", "job.py", "--procs-per-node", "2"]
        base_cmd = [str(bin_dir / "torchrun"), "--standalone", "--nproc-per-node=2", "job.py"]
        timed(base_cmd, tmp)  # warm the page cache for both
        timed(ours_cmd, tmp)
        ours, base = [], []
        for _ in range(RUNS):
            ours.append(timed(ours_cmd, tmp))
            base.append(timed(base_cmd, tmp))
    mine, theirs = _common.median(ours), _common.median(base)
    ratio = mine / theirs
    print(
        f"B5 workbench train (1 node x 2 procs, 20 DDP steps): median {_common.ms(mine)} "
        f"(baseline: torchrun --standalone by hand {_common.ms(theirs)}); ratio {ratio:.2f}x "
        f"target <= 1.03x: {_common.verdict(ratio, 1.03)}"
    )
    print(f"   spread over {RUNS} runs: workbench {_common.ms(min(ours))}..{_common.ms(max(ours))}, "
          f"torchrun {_common.ms(min(base))}..{_common.ms(max(base))}")  # fmt: skip


if __name__ == "__main__":
    _common.main_guard(main)
