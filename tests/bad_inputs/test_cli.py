"""Every bad input to the ``workbench`` command: exit 2, one line on stderr naming the value, nothing made.

The table runs in this process through ``workbench.cli.main`` (what the console script calls),
with warnings and log records counted as the extra stderr lines they would be; the cases the
issue names run again as real subprocesses.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from workbench.cli import main

from .cases import CLI, CLI_ONLY, FIELDS, CliCase, Field, fill
from .conftest import assert_nothing_created, one_line, places

FIELD_CASES = [f for f in FIELDS if f.applies(CLI)]


def refused(argv: list[str], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """Run the command in this process; the one line it printed on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    assert out == ""
    assert [str(w.message) for w in caught] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    line = one_line(err)
    assert line.startswith("workbench: error: "), line
    return line


@pytest.fixture
def in_workspace(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(workspace)
    return workspace


@pytest.mark.parametrize("case", FIELD_CASES, ids=lambda c: c.id)
def test_bad_flag(
    case: Field,
    in_workspace: Path,
    wb_home: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    line = refused(case.argv(), capsys, caplog)
    assert case.value in line and case.says in line, line
    assert_nothing_created(wb_home)


@pytest.mark.parametrize("case", CLI_ONLY, ids=lambda c: c.id)
def test_bad_command(
    case: CliCase,
    in_workspace: Path,
    wb_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    where = places(in_workspace)
    for key, value in case.env.items():
        if value:
            monkeypatch.setenv(key, fill(value, where))
        else:
            monkeypatch.delenv(key)
    if case.config is not None:
        config = tmp_path / "config.yaml"
        config.write_text(fill(case.config, where))
        monkeypatch.setenv("WORKBENCH_CONFIG", str(config))
    line = refused([fill(a, where) for a in case.argv], capsys, caplog)
    assert fill(case.value, where) in line and case.says in line, line
    assert_nothing_created(Path(os.environ.get("WORKBENCH_HOME", wb_home)))
    assert_nothing_created(wb_home)


# the cases issue 12 names, each as a real process: what a user sees on the terminal;
# (the arguments, the value the line names, WORKBENCH_HOME relative to the workspace or absolute)
ISSUE: list[tuple[tuple[str, ...], str, str | None]] = [
    (("run", "ok.py", "--memory", "-1Gi"), "-1Gi", None),
    (("run", "ok.py", "--memory", "999999Ei"), "999999Ei", None),
    (("run", "ok.py", "--cpu", "1e9"), "1e9", None),
    (("wait", "x", "--timeout", "-1"), "-1", None),
    (("dask", "scale", "x", "100000"), "100000", None),
    (("notebook", "run", "int.ipynb"), "int.ipynb", None),
    (("notebook", "run", "nb.ipynb", "--output", "/proc/nope"), "/proc/nope", None),
    (("notebook", "run", "nb.ipynb", "--output", "afile"), "afile", None),
    (("notebook", "run", "nb.ipynb", "--kernel", "nosuchkernel"), "nosuchkernel", None),
    (("notebook", "run", "nb.ipynb", "-p", "lr", "1e400"), "1e400", None),
    (("notebook", "run", "nb.ipynb", "--sweep", "lr=1,2", "--parallel", "0"), "0", None),
    (("notebook", "run", "nb.ipynb", "--sweep", "lr=0.1,fast"), "fast", None),
    (("ls",), "afile", "afile"),
    (("ls",), "afile/home", "afile/home"),
    (("ls",), "/proc/workbench", "/proc/workbench"),
]


@pytest.mark.parametrize(
    ("argv", "named", "home"), ISSUE, ids=[" ".join(a) + (f" home={h}" if h else "") for a, _, h in ISSUE]
)
def test_issue_case_in_a_real_process(
    argv: tuple[str, ...], named: str, home: str | None, workspace: Path, wb_home: Path
) -> None:
    env = dict(os.environ)
    if home is not None:
        env["WORKBENCH_HOME"] = str(workspace / home)  # an absolute home stays as it is
    result = subprocess.run(
        [sys.executable, "-m", "workbench.cli", *argv],
        capture_output=True,
        text=True,
        cwd=workspace,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2, result
    assert result.stdout == ""
    line = one_line(result.stderr)  # no "sweeping 2 runs" line before a sweep's error, no warning
    assert line.startswith("workbench: error: ") and named in line, line
    assert_nothing_created(Path(env["WORKBENCH_HOME"]))
    assert_nothing_created(wb_home)
