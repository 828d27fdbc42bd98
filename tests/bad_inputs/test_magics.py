"""Every bad input to the magics, in one real kernel: the cell fails with one line naming the
value, no traceback, nothing printed besides, and nothing created."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.kernel import Kernel

from .cases import FIELDS, MAGIC, MAGIC_ONLY, Field, MagicCase
from .conftest import assert_nothing_created, one_line

FIELD_CASES = [f for f in FIELDS if f.applies(MAGIC)]


@dataclass
class Session:
    kernel: Kernel
    home: Path
    workspace: Path


@pytest.fixture(scope="module")
def session(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """One kernel for every case, on a home of its own, working in the workspace."""
    home = tmp_path_factory.mktemp("magics") / "wbhome"
    kernel = Kernel.isolated(home)
    try:
        reply = kernel.run(
            f"%load_ext workbench\nimport os, threading\nos.chdir({str(workspace)!r})\n"
            "sent_a = 1\nlock = threading.Lock()"
        )
        assert reply.error is None, reply
        yield Session(kernel, home, workspace)
    finally:
        kernel.stop()


def refused(session: Session, code: str) -> str:
    """Run ``code``; the one line the failed cell shows."""
    reply = session.kernel.run(code)
    assert reply.error is not None, reply
    assert reply.error["ename"] == "WorkbenchCellError", reply.error_text
    assert (reply.stdout, reply.stderr) == ("", ""), reply
    line = one_line(reply.error_text)
    assert line.startswith("workbench: "), line
    assert_nothing_created(session.home)
    return line


@pytest.mark.parametrize("case", FIELD_CASES, ids=lambda c: c.id)
def test_bad_flag(case: Field, session: Session) -> None:
    line = refused(session, case.cell())
    assert case.value in line and case.says in line, line


@pytest.mark.parametrize("case", MAGIC_ONLY, ids=lambda c: c.id)
def test_bad_line(case: MagicCase, session: Session) -> None:
    line = refused(session, case.code)
    assert case.value in line and case.says in line, line


HOMES = {
    "home_is_a_file": ("{afile}", "is a file"),
    "home_under_a_file": ("{afile}/home", "is under"),
    "home_in_proc": ("/proc/workbench", "virtual filesystem"),
}


@pytest.mark.parametrize("name", HOMES)
def test_bad_home(name: str, session: Session) -> None:
    """A kernel whose WORKBENCH_HOME cannot be one: every magic says so in one line."""
    template, says = HOMES[name]
    home = template.replace("{afile}", str(session.workspace / "afile"))
    switch = "import os\nos.environ['WORKBENCH_HOME'] = {!r}\n%reload_ext workbench"
    assert session.kernel.run(switch.format(home)).error is None
    try:
        line = refused(session, "%wb ls")
        assert home in line and says in line, line
        line = refused(session, "%%pod\nprint(1)")
        assert home in line and says in line, line
    finally:
        assert session.kernel.run(switch.format(str(session.home))).error is None
