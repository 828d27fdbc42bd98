"""Helpers for code that runs on every rank of a ``train`` workload (``%%train``, ``workbench train``).

::

    import workbench.train as wt

    ctx = wt.init()                       # process group: nccl with GPUs, gloo without
    model = torch.nn.parallel.DistributedDataParallel(model)
    state = ctx.load_checkpoint()         # resume after an elastic restart
    ...
    ctx.save_checkpoint({"step": step, "model": model.state_dict()})
    if ctx.is_main:
        torch.save(model.state_dict(), ctx.output_dir / "model.pt")

torch is imported when :func:`init` runs, never when this module is imported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class Context:
    """Where this process stands in the job."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: str
    output_dir: Path

    @property
    def is_main(self) -> bool:
        """True on rank 0, whose ``--get`` variables and outputs come back."""
        return self.rank == 0

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    def save_checkpoint(self, state: dict[str, Any]) -> Path:
        """Rank 0 writes ``state`` atomically to the job's output folder; every rank waits for it."""
        import torch

        path = self.output_dir / CHECKPOINT
        if self.is_main:
            tmp = path.with_suffix(".tmp")
            torch.save(state, tmp)
            tmp.replace(path)
        self.barrier()
        return path

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last checkpoint (after an elastic restart), or None when the job starts fresh."""
        import torch

        path = self.output_dir / CHECKPOINT
        if not path.exists():
            return None
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
        return state


def init(backend: str | None = None, *, timeout: float | None = None) -> Context:
    """Join the job's process group (from torchrun's environment) and describe this rank.

    Args:
        backend: ``nccl`` or ``gloo``; by default nccl when this process sees a GPU.
        timeout: seconds a collective may wait for its peers (torch's default: 30 minutes).
            A short one lets an elastic job notice a lost peer and restart sooner.
    """
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    chosen = backend or ("nccl" if cuda else "gloo")
    device = "cpu"
    if cuda:
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    if not dist.is_initialized():
        if timeout is None:
            dist.init_process_group(chosen)
        else:
            import datetime

            dist.init_process_group(chosen, timeout=datetime.timedelta(seconds=timeout))
    output = Path(os.environ.get("WORKBENCH_OUTPUT_DIR", "outputs"))
    output.mkdir(parents=True, exist_ok=True)
    return Context(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=local_rank,
        backend=chosen,
        device=device,
        output_dir=output,
    )
