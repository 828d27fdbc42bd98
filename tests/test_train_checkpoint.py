"""``wt.save_checkpoint`` / ``wt.load_checkpoint`` at a path, a ``file://`` URL and another fsspec
URL, in a real (one-process) gloo group."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import workbench.train as wt


@pytest.fixture
def group() -> Iterator[None]:
    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _context(tmp_path: Path, checkpoint_dir: str) -> wt.Context:
    return wt.Context(0, 1, 0, "gloo", "cpu", tmp_path / "outputs", checkpoint_dir)


@pytest.mark.usefixtures("group")
def test_checkpoints_round_trip_wherever_the_dir_is(tmp_path: Path) -> None:
    import fsspec
    import torch

    state = {"step": 7, "w": torch.arange(3.0)}
    cases = {
        "": tmp_path / "outputs" / "checkpoint.pt",  # unset: the outputs folder, as before
        str(tmp_path / "a"): tmp_path / "a" / "checkpoint.pt",
        f"file://{tmp_path}/b/": tmp_path / "b" / "checkpoint.pt",
        "memory://ckpt/run-1": "memory://ckpt/run-1/checkpoint.pt",
    }
    for given, expected in cases.items():
        ctx = _context(tmp_path, given)
        assert ctx.load_checkpoint() is None  # a fresh start
        assert ctx.save_checkpoint(state) == expected == ctx.checkpoint_path
        loaded = ctx.load_checkpoint()
        assert loaded is not None and loaded["step"] == 7 and torch.equal(loaded["w"], state["w"])
    memory = fsspec.filesystem("memory")
    assert memory.exists("/ckpt/run-1/checkpoint.pt")
    memory.rm("/ckpt", recursive=True)
    assert not list(tmp_path.rglob("*.tmp"))  # written whole, then renamed
