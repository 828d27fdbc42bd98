"""What issue 12 fixed besides refusals: the user's own frames for a script that cannot be
compiled, ``--send a,b`` in the cell magics, and commands given a workload of the wrong kind."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel import Kernel
from workbench.cli import main
from workbench.service import Service

from .conftest import one_line


def wb(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


SYNTAX = (b"x = 1\nif x\n    pass\n", ['  File "bad.py", line 2', "    if x", "SyntaxError: expected ':'"])
BINARY = (
    b"\xff\xfe\x00\x01",
    ['  File "bad.py"', "SyntaxError: source code string cannot contain null bytes"],
)


@pytest.mark.parametrize(("content", "shown"), [SYNTAX, BINARY], ids=["syntax", "binary"])
def test_a_script_that_does_not_compile_shows_only_the_users_file(
    content: bytes, shown: list[str], tmp_path: Path
) -> None:
    (tmp_path / "bad.py").write_bytes(content)
    result = wb("run", "bad.py", cwd=tmp_path)
    assert result.returncode == 1, result
    lines = result.stdout.splitlines()
    assert [line for line in lines if not line.strip().startswith("^")] == shown, result.stdout
    assert "Traceback" not in result.stdout and "runpy" not in result.stdout
    assert "workbench" not in result.stdout  # no frame of the runner
    assert one_line(result.stderr.splitlines()[-1]).endswith("shows the whole output")


def test_a_failing_script_keeps_its_own_frames(tmp_path: Path) -> None:
    (tmp_path / "boom.py").write_text("def f():\n    raise KeyError('k')\n\nf()\n")
    result = wb("run", "boom.py", cwd=tmp_path)
    assert result.returncode == 1, result
    frames = [line for line in result.stdout.splitlines() if line.startswith("  File ")]
    assert len(frames) == 2 and all(line.split('"')[1].endswith("/boom.py") for line in frames), result.stdout
    assert result.stdout.splitlines()[0] == "Traceback (most recent call last):"
    assert result.stdout.splitlines()[-1] == "KeyError: 'k'"


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    home = tmp_path_factory.mktemp("fixes") / "wbhome"
    k = Kernel.isolated(home)
    try:
        assert k.run("%load_ext workbench\na, b = 20, 22").error is None
        yield k
    finally:
        k.stop()


@pytest.mark.parametrize("magic", ["pod", "train"])
def test_send_takes_names_separated_by_commas(magic: str, kernel: Kernel) -> None:
    """``--send a,b`` as the README writes it (and ``--get`` likewise)."""
    reply = kernel.run(f"%%{magic} --send a,b --get c,d --name send-{magic}\nc = a + b\nd = a * b")
    assert reply.error is None, reply
    check = kernel.run("print(c, d)")
    assert check.stdout == "42 440\n", check


def test_a_syntax_error_in_a_cell_shows_the_cell(kernel: Kernel) -> None:
    reply = kernel.run("%%pod\nx = 1\nif x\n    pass")
    assert reply.error is not None
    assert '  File "cell", line 2' in reply.stdout and "SyntaxError: expected ':'" in reply.stdout, reply
    assert "Traceback" not in reply.stdout and "runpy" not in reply.stdout


def test_verify_and_rerun_name_a_pod_as_not_a_notebook_run(
    service: Service, wb_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pod = service.launch({"kind": "pod", "code": "print(1)", "name": "plain-pod"})
    service.wait(pod.id, timeout=60)
    capsys.readouterr()
    for argv in (["verify", "plain-pod"], ["notebook", "rerun", "plain-pod"]):
        assert main(argv) == 2
        out, err = capsys.readouterr()
        line = one_line(err)
        assert out == "" and "plain-pod is a pod workload" in line, line
        assert "notebook" in line
    assert [w.id for w in service.list()] == ["plain-pod"]
    assert sorted(p.name for p in service.settings.runs_dir.iterdir()) == ["plain-pod"]
