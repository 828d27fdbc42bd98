"""``--output`` and ``--checkpoint-dir`` on the local backend, with real processes (and torchrun).

Locally the outputs folder is kept in the run directory anyway; ``--output`` also publishes it
to ``<output>/<workload id>`` when the code ends, as on a cluster, and ``--checkpoint-dir`` is
where ``wt.save_checkpoint`` writes (``WORKBENCH_CHECKPOINT_DIR``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.errors import SpecError
from workbench.service import Service

from ...conftest import assert_nothing_created

WRITES = """
import os
from pathlib import Path
out = Path(os.environ["WORKBENCH_OUTPUT_DIR"])
(out / "sub").mkdir()
(out / "sub" / "result.txt").write_text("42")
"""


def test_a_pods_outputs_stay_in_the_run_directory_and_are_published_to_output(
    service: Service, tmp_path: Path
) -> None:
    workload = service.launch(
        {"kind": "pod", "code": WRITES, "output": "published", "name": "pub"}, cwd=str(tmp_path)
    )
    final = service.wait(workload.id, timeout=60)
    assert final.status == "succeeded", final.message
    assert (Path(final.run_dir) / "outputs" / "sub" / "result.txt").read_text() == "42"
    # a relative --output is where it was launched from, as for notebook runs
    assert (tmp_path / "published" / "pub" / "sub" / "result.txt").read_text() == "42"


CHECKPOINTS = """
import os
import torch
import workbench.train as wt

ctx = wt.init()
state = ctx.load_checkpoint()
print("start", None if state is None else state["step"], flush=True)
ctx.save_checkpoint({"step": 3, "w": torch.ones(2)})
print("saved", ctx.checkpoint_path, flush=True)
"""


def test_a_training_jobs_checkpoints_go_to_checkpoint_dir_and_resume_from_there(
    service: Service, tmp_path: Path
) -> None:
    spec = {"kind": "train", "code": CHECKPOINTS, "checkpoint_dir": str(tmp_path / "ckpt")}
    first = service.wait(service.launch(spec).id, timeout=120)
    assert first.status == "succeeded", first.message
    assert (tmp_path / "ckpt" / "checkpoint.pt").is_file()
    assert not (Path(first.run_dir) / "outputs" / "checkpoint.pt").exists()
    assert "start None" in "".join(service.logs(first.id))
    # a job given the same directory resumes from its checkpoint (as the docstring says)
    second = service.wait(service.launch(spec).id, timeout=120)
    assert second.status == "succeeded", second.message
    assert "start 3" in "".join(service.logs(second.id))


def test_a_checkpoint_dir_that_cannot_be_written_is_refused_before_anything_exists(
    service: Service, tmp_path: Path
) -> None:
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(SpecError) as info:
        service.launch({"kind": "train", "code": "pass", "checkpoint_dir": str(tmp_path / "taken" / "c")})
    line = info.value.one_line()
    assert line.startswith(
        f"--checkpoint-dir '{tmp_path}/taken/c' is under {tmp_path}/taken, which is a file"
    )
    assert_nothing_created(service)
