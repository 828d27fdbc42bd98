"""``--env``, ``--secret`` and ``--label`` cannot override what workbench sets (issue 11, hole 5).

Through the real ``workbench`` command: exit 2, one line on stderr, nothing created.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from workbench.service import Service

from .conftest import assert_nothing_created

WORKBENCH = Path(sys.executable).parent / "workbench"


def wb(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(WORKBENCH), *args], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.mark.parametrize(
    ("args", "first_words"),
    [
        (
            ["run", "ok.py", "--env", "CUDA_VISIBLE_DEVICES=0,1"],
            "invalid --env (env): CUDA_VISIBLE_DEVICES is set",
        ),
        (
            ["run", "ok.py", "--gpus", "0", "--env", "NVIDIA_VISIBLE_DEVICES=all"],
            "NVIDIA_VISIBLE_DEVICES is set",
        ),
        (["run", "ok.py", "--env", "WORKBENCH_RUN_DIR=/elsewhere"], "WORKBENCH_RUN_DIR is set by workbench"),
        (["run", "ok.py", "--env", "WORKBENCH_HOME=/elsewhere"], "WORKBENCH_HOME is set by workbench"),
        (["run", "ok.py", "--secret", "CUDA_VISIBLE_DEVICES=gpus:list"], "invalid --secret (secrets)"),
        (["run", "ok.py", "--label", "workbench.jupyter.org/name=x"], "invalid --label (labels)"),
        (["run", "ok.py", "--label", "app.kubernetes.io/managed-by=me"], "is set by workbench"),
        (["train", "ok.py", "--env", "MASTER_PORT=1"], "MASTER_PORT is set by workbench's launcher"),
        (["train", "ok.py", "--env", "RANK=0"], "RANK is set by workbench's launcher"),
        (["notebook", "run", "nb.ipynb", "--env", "WORKBENCH_SIGN_PROVENANCE=1"], "with --sign instead"),
        (["dask", "up", "--env", "WORKBENCH_WORKLOAD_ID=x"], "WORKBENCH_WORKLOAD_ID is set by workbench"),
    ],
)
def test_reserved_names_exit_2_with_one_line_and_create_nothing(
    tmp_path: Path, service: Service, args: list[str], first_words: str
) -> None:
    (tmp_path / "ok.py").write_text("print('ran')\n")
    (tmp_path / "nb.ipynb").write_text("{}")
    result = wb(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("workbench: error: invalid "), lines[0]
    assert first_words in lines[0]
    assert_nothing_created(service)
