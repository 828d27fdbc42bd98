"""The ``workbench`` command, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from workbench.service import Service

from .conftest import assert_nothing_created


def wb(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    (tmp_path / "ok.py").write_text("import sys\nprint('args', sys.argv[1:])\n")
    (tmp_path / "boom.py").write_text("print('about to fail')\nraise RuntimeError('bad batch')\n")
    (tmp_path / "slow.py").write_text("import time\nprint('slow start', flush=True)\ntime.sleep(300)\n")
    return tmp_path


def test_run_success_streams_output_and_exits_0(scripts: Path) -> None:
    result = wb("run", "ok.py", "--cpu", "1", "--", "--epochs", "2", cwd=scripts)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "args ['--epochs', '2']\n"
    assert "succeeded" in result.stderr


def test_run_failure_exits_1_with_the_error(scripts: Path) -> None:
    result = wb("run", "boom.py", cwd=scripts)
    assert result.returncode == 1
    assert "about to fail" in result.stdout and "RuntimeError: bad batch" in result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("workbench: error: pod-")
    assert "failed: exited with code 1: RuntimeError: bad batch" in last
    assert "workbench logs pod-" in last


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--gpus", "-1"], "invalid --gpus (resources.gpus): -1 is negative"),
        (["--memory", "4 gigs"], "'4 gigs' is not a quantity"),
        (["--cpu", "lots"], "invalid --cpu (resources.cpu)"),
        (["--name", "Bad_Name"], "name 'Bad_Name' must be lower-case"),
        (["--timeout", "soon"], "'soon' is not a duration"),
        (["--env", "NOEQUALS"], "must look like KEY=VALUE"),
        (["--profile", "a100"], "unknown profile 'a100'"),
        (["--backend", "cloud"], "invalid --backend"),
        (["--gpus", "3"], "asks for 3 GPUs but this host has 0"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_creates_nothing(
    scripts: Path, args: list[str], expected: str
) -> None:
    result = wb("run", "ok.py", *args, cwd=scripts)
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert_nothing_created(Service())


def test_missing_script_exits_2(scripts: Path) -> None:
    result = wb("run", "absent.py", cwd=scripts)
    assert result.returncode == 2
    assert "cannot read script 'absent.py'" in result.stderr


def test_detach_ls_logs_describe_cancel_rm(scripts: Path) -> None:
    started = wb("run", "slow.py", "--name", "slow-one", "--detach", cwd=scripts)
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "slow-one"
    service = Service()
    deadline = time.monotonic() + 30
    while "slow start" not in "".join(service.logs("slow-one")):
        assert time.monotonic() < deadline
        time.sleep(0.05)

    table = wb("ls")
    header, row = table.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "KIND", "BACKEND", "STATUS", "AGE", "GPUS", "MESSAGE"]
    assert row.split()[:4] == ["slow-one", "pod", "local", "running"]

    as_json = json.loads(wb("ls", "-o", "json").stdout)
    assert [(w["id"], w["status"]) for w in as_json] == [("slow-one", "running")]
    as_yaml = yaml.safe_load(wb("ls", "-o", "yaml").stdout)
    assert as_yaml[0]["spec"]["script"] == "slow.py"

    assert wb("logs", "slow-one").stdout == "slow start\n"
    described = yaml.safe_load(wb("describe", "slow-one").stdout)
    assert described["name"] == "slow-one" and described["status"] == "running"

    busy = wb("rm", "slow-one")
    assert busy.returncode == 2 and "'slow-one' is still running" in busy.stderr

    cancelled = wb("cancel", "slow-one")
    assert cancelled.stdout.strip() == "slow-one cancelled"
    assert wb("wait", "slow-one").returncode == 1
    assert wb("rm", "slow-one").returncode == 0
    assert json.loads(wb("ls", "-o", "json").stdout) == []


def test_logs_follow_until_the_end(scripts: Path) -> None:
    (scripts / "count.py").write_text(
        "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.2)\n"
    )
    name = wb("run", "count.py", "--detach", cwd=scripts).stdout.strip()
    followed = wb("logs", "-f", name)
    assert followed.returncode == 0
    assert followed.stdout == "0\n1\n2\n"


def test_unknown_workload_exits_2() -> None:
    for command in ("logs", "describe", "cancel", "rm"):
        result = wb(command, "no-such-thing")
        assert result.returncode == 2
        assert result.stderr.strip() == (
            "workbench: error: no workload named 'no-such-thing' — run `workbench ls` to see the workloads"
        )


def test_schema_prints_json_schema() -> None:
    result = wb("schema", "pod")
    schema = json.loads(result.stdout)
    assert schema["title"] == "PodSpec"
    assert schema["properties"]["timeout"]["x-flag"] == "--timeout"


def test_help_exits_0() -> None:
    result = wb("run", "--help")
    assert result.returncode == 0
    assert "--gpus N" in result.stdout and "--detach" in result.stdout
