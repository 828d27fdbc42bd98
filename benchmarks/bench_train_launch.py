"""B5: `workbench train` launch overhead against the same `torchrun` typed by hand.

A tiny DDP job (2 processes, gloo, 20 steps) runs each way ``RUNS`` times, taking turns at
going first: ``workbench train job.py --procs-per-node 2`` (CLI → supervisor → torchrun's
agent → ranks, output streamed back, exit code) and ``torchrun --standalone
--nproc-per-node=2 job.py``, the baseline. Informative: the torchrun form workbench runs for
one node without restarts (static rendezvous), typed by hand, which shows what the launcher
itself adds.

Where the time goes: every rank prints wall-clock marks (its first line, before it imports
torch; after its process group is up; its last line), and the workload's record has its
created, started and ended times, so each run splits into phases that add up to the whole.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import _common

RUNS = 9
TARGET = 1.03
JOB = """
import sys
import time

sys.stdout.write(f"@@t first {time.time()}\\n")  # one write each: the ranks share a pipe
import os

import torch
import torch.distributed as dist

dist.init_process_group("gloo")
sys.stdout.write(f"@@t ready {time.time()}\\n")
torch.manual_seed(0)
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(16, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
for _ in range(20):
    loss = model(torch.randn(32, 16)).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
sys.stdout.write(f"rank {dist.get_rank()} loss {loss.item():.4f}\\n")
dist.barrier()
dist.destroy_process_group()
sys.stdout.write(f"@@t last {time.time()}\\n")
# torch 2.13's gloo can abort at interpreter teardown ("terminate called without an active
# exception"); leave without it, as workbench's runner does
sys.stdout.flush()
os._exit(0)
"""
#: workbench's torchrun form for one node without restarts (PORT: a free port, picked per run)
LEAN = ["--nnodes=1", "--master-addr=127.0.0.1", "--master-port=PORT"]
MARK = re.compile(r"@@t (first|ready|last) ([0-9.]+)")
STARTED = re.compile(r"workbench: (\S+) started on local")

# (label, from mark, to mark) for `workbench train`; consecutive, so they add up to the whole
OURS = [
    ("CLI boots, validates, stages, inserts the record", "t0", "created"),
    ("supervisor boots and starts the training entry", "created", "started"),
    ("torchrun boots (imports torch), rendezvous, ranks start", "started", "first"),
    ("ranks import torch, process group up", "first", "ready"),
    ("the job itself", "ready", "last"),
    ("ranks exit, torchrun + supervisor record the end", "last", "ended"),
    ("CLI notices the end and exits", "ended", "t1"),
]
BASE = [
    ("torchrun boots (imports torch), rendezvous, ranks start", "t0", "first"),
    ("ranks import torch, process group up", "first", "ready"),
    ("the job itself", "ready", "last"),
    ("ranks exit, torchrun exits", "last", "t1"),
]


def timed(argv: list[str], cwd: Path) -> dict[str, float | str]:
    """One run: its wall time (``t0``, ``t1``), the ranks' marks and, for ours, the workload id."""
    started = time.time()
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    marks: dict[str, float | str] = {"t0": started, "t1": time.time()}
    if result.returncode != 0:
        raise _common.BenchError(f"{argv[:3]} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    seen: dict[str, list[float]] = {}
    for name, value in MARK.findall(result.stdout):
        seen.setdefault(name, []).append(float(value))
    if any(len(seen.get(name, [])) != 2 for name in ("first", "ready", "last")):
        raise _common.BenchError(f"{argv[:3]}: expected marks from 2 ranks, got {seen} in:\n{result.stdout}")
    marks.update(first=min(seen["first"]), ready=max(seen["ready"]), last=max(seen["last"]))
    found = STARTED.search(result.stderr)
    if found:
        marks["id"] = found.group(1)
    return marks


def add_record_times(runs: list[dict[str, float | str]]) -> None:
    """``created``, ``started`` and ``ended`` of each run's workload, from the store."""
    from workbench.config import load_settings
    from workbench.store import Store

    store = Store(load_settings().db_path)
    try:
        for run in runs:
            record = store.get(str(run["id"]))
            if record.started is None or record.ended is None:
                raise _common.BenchError(f"{run['id']} has no start or end time: {record}")
            run.update(created=record.created, started=record.started, ended=record.ended)
    finally:
        store.close()


def phase_lines(runs: list[dict[str, float | str]], phases: list[tuple[str, str, str]]) -> list[str]:
    def span(run: dict[str, float | str], start: str, end: str) -> float:
        return float(run[end]) - float(run[start])

    return [
        f"     {_common.ms(_common.median([span(r, a, b) for r in runs]))}  {label}" for label, a, b in phases
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def main() -> None:
    bin_dir = Path(sys.executable).parent
    torchrun = str(bin_dir / "torchrun")
    with _common.isolated_home("b5") as tmp:
        (tmp / "job.py").write_text(JOB)
        commands = {
            "ours": [str(bin_dir / "workbench"), "train", "job.py", "--procs-per-node", "2"],
            "base": [torchrun, "--standalone", "--nproc-per-node=2", "job.py"],
            # informative: the torchrun form workbench runs for one node without restarts
            "lean": [torchrun, *LEAN, "--nproc-per-node=2", "job.py"],
        }

        def run(name: str) -> dict[str, float | str]:
            argv = [a.replace("PORT", str(free_port())) for a in commands[name]]
            return timed(argv, cwd=tmp)

        for name in commands:  # warm the page cache for each
            run(name)
        results: dict[str, list[dict[str, float | str]]] = {name: [] for name in commands}
        for i in range(RUNS):
            names = list(commands)
            for name in names[i % len(names) :] + names[: i % len(names)]:  # each goes first in turn
                results[name].append(run(name))
        add_record_times(results["ours"])
    total = {name: [float(r["t1"]) - float(r["t0"]) for r in runs] for name, runs in results.items()}
    mine, theirs, lean = (_common.median(total[name]) for name in ("ours", "base", "lean"))
    ratio = mine / theirs
    print(
        f"B5 workbench train (1 node x 2 procs, 20 DDP steps): median {_common.ms(mine)} "
        f"(baseline: torchrun --standalone by hand {_common.ms(theirs)}); "
        f"{'+' if mine >= theirs else '-'}{_common.ms(abs(mine - theirs))}, "
        f"ratio {ratio:.3f}x; target <= {TARGET}x: {_common.verdict(ratio, TARGET)}"
    )
    spread = ", ".join(f"{name} {_common.ms(min(t))}..{_common.ms(max(t))}" for name, t in total.items())
    print(f"   spread over {RUNS} runs: {spread}")
    print(
        f"   informative: the same torchrun form as workbench's by hand (static rendezvous) "
        f"{_common.ms(lean)}; workbench train is {mine / lean:.3f}x that"
    )
    print(f"   where the time goes, workbench train (medians of {RUNS} runs):")
    print("\n".join(phase_lines(results["ours"], OURS)))
    print(f"   where the time goes, torchrun --standalone by hand (medians of {RUNS} runs):")
    print("\n".join(phase_lines(results["base"], BASE)))
    print(f"   where the time goes, the static form by hand (medians of {RUNS} runs):")
    print("\n".join(phase_lines(results["lean"], BASE)))


if __name__ == "__main__":
    _common.main_guard(main)
