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

Checkpoints go to ``<checkpoint dir>/checkpoint.pt``: ``--checkpoint-dir`` (the environment's
``WORKBENCH_CHECKPOINT_DIR``: a path, or an fsspec URL such as ``s3://bucket/ckpt/run-1``),
else the outputs folder. On Kubernetes each node's outputs folder is its pod's own disk, so a
multi-node job that restarts needs ``--checkpoint-dir`` on a shared volume or an object store.
Give each job its own directory: a job started with a directory that already holds a
checkpoint resumes from it.

torch is imported when :func:`init` runs, never when this module is imported.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_ENV = "WORKBENCH_CHECKPOINT_DIR"


def _local(location: str) -> Path | None:
    """``location`` as a local folder (a path or a ``file://`` URL); None for another URL."""
    if location.startswith("file://"):
        return Path(location.removeprefix("file://"))
    return None if "://" in location else Path(location)


@dataclass(frozen=True)
class Context:
    """Where this process stands in the job."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: str
    output_dir: Path
    #: where checkpoints go: a local folder or an fsspec URL (default: ``output_dir``)
    checkpoint_dir: str = ""

    @property
    def checkpoint_path(self) -> Path | str:
        """The checkpoint file, ``<checkpoint dir>/checkpoint.pt``: a local path, or a URL."""
        base = self.checkpoint_dir or str(self.output_dir)
        folder = _local(base)
        return base.rstrip("/") + "/" + CHECKPOINT if folder is None else folder / CHECKPOINT

    @property
    def is_main(self) -> bool:
        """True on rank 0, whose ``--get`` variables and outputs come back."""
        return self.rank == 0

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    def save_checkpoint(self, state: dict[str, Any]) -> Path | str:
        """Rank 0 writes ``state`` to :attr:`checkpoint_path`; every rank waits for it.

        A local folder (a path, a ``file://`` URL, a mounted volume) gets a temporary file
        renamed over the last checkpoint, so a crash mid-write leaves the previous one whole;
        another URL gets one put of the whole file (an object store's put is atomic).
        Returns the checkpoint's path (a local folder) or URL.
        """
        import torch

        path = self.checkpoint_path
        if self.is_main:
            if isinstance(path, Path):
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                torch.save(state, tmp)
                tmp.replace(path)
            else:
                import fsspec

                buffer = io.BytesIO()
                torch.save(state, buffer)
                fs, target = fsspec.core.url_to_fs(path)
                fs.pipe_file(target, buffer.getvalue())
        self.barrier()
        return path

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last checkpoint (after an elastic restart, or a job started with a
        ``--checkpoint-dir`` that holds one), or None when the job starts fresh."""
        import torch

        path = self.checkpoint_path
        if isinstance(path, Path):
            if not path.exists():
                return None
            source: Any = path
        else:
            import fsspec

            fs, target = fsspec.core.url_to_fs(path)
            if not fs.exists(target):
                return None
            source = io.BytesIO(fs.cat_file(target))
        state: dict[str, Any] = torch.load(source, map_location="cpu", weights_only=False)
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
        checkpoint_dir=os.environ.get(CHECKPOINT_ENV, ""),
    )
