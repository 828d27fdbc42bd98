"""``%%train`` in a real kernel: every rank's output in the cell, --send and --get, a failing rank."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from .kernel import Kernel

ALL_REDUCE = """
import torch
import torch.distributed as dist
import workbench.train as wt

ctx = wt.init()
value = torch.tensor([float(scale * (ctx.rank + 1))])
dist.all_reduce(value)
print(f"sum {value.item():g} offset {offset}")
total = value.item() + offset
"""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    # one kernel and one WORKBENCH_HOME for the module: a torchrun job costs seconds already
    k = Kernel.isolated(tmp_path_factory.mktemp("train") / "wbhome")
    assert k.run("%load_ext workbench").error is None
    yield k
    k.stop()


def test_train_streams_every_rank_and_brings_rank_0_back(kernel: Kernel) -> None:
    assert kernel.run("scale = 10\noffset = 0.5").error is None
    reply = kernel.run(f"%%train --procs-per-node 2 --send scale,offset --get total\n{ALL_REDUCE}")
    assert reply.error is None, reply
    lines = sorted(line for line in reply.stdout.splitlines() if "sum" in line)
    assert lines == ["[rank 0] sum 30 offset 0.5", "[rank 1] sum 30 offset 0.5"]
    assert kernel.run("print(total)").stdout == "30.5\n"


def test_a_failing_rank_is_one_line_that_names_it(kernel: Kernel) -> None:
    code = (
        "import workbench.train as wt\nctx = wt.init()\n"
        "if ctx.rank == 1:\n    raise ValueError('bad shard')\nprint('ok', ctx.rank)\n"
    )
    reply = kernel.run(f"%%train --procs-per-node 2 --name broken\n{code}")
    assert reply.error is not None
    assert len(reply.error["traceback"]) == 1
    line = reply.error["traceback"][0]
    assert re.search(r"broken failed: .*rank 1.*ValueError: bad shard", line), line
    assert "ValueError: bad shard" in reply.stdout  # the rank's own traceback, streamed into the cell
    assert "status: failed" in kernel.run("%wb describe broken").stdout
