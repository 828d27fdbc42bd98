"""The workspace every bad-input case runs in, and the check that nothing was created."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat
import psutil
import pytest

from workbench.store import Store

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _notebook(metadata: dict[str, object]) -> str:
    nb = nbformat.v4.new_notebook(metadata=metadata)
    nb.cells.append(
        nbformat.v4.new_code_cell("lr = 0.1\nn = 2\nflag = True", metadata={"tags": ["parameters"]})
    )
    nb.cells.append(nbformat.v4.new_code_cell("print(lr, n, flag)"))
    return str(nbformat.writes(nb))  # type: ignore[no-untyped-call]


def make_workspace(folder: Path) -> Path:
    """The files the cases name: good ones to put bad flags on, and bad ones."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, str | bytes] = {
        "ok.py": "print('ok')\n",
        "data.txt": "not python\n",
        "nb.txt": "not a notebook\n",
        "afile": "a file where a folder should be\n",
        "nb.ipynb": _notebook({"kernelspec": KERNELSPEC}),
        "nokernel.ipynb": _notebook({}),
        "otherkernel.ipynb": _notebook({"kernelspec": {**KERNELSPEC, "name": "nosuchkernel2"}}),
        "int.ipynb": "5\n",
        "list.ipynb": "[1, 2]\n",
        "notjson.ipynb": "{",
        "binary.ipynb": b"\xff\xfe\x00\x01binary",
        "cells.ipynb": json.dumps({"cells": 5, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}),
        "nometa.ipynb": json.dumps({"cells": [], "metadata": [], "nbformat": 4, "nbformat_minor": 5}),
        "badcell.ipynb": json.dumps(
            {
                "cells": [{"cell_type": "code", "metadata": {}}],
                "metadata": {"kernelspec": KERNELSPEC},
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        ),
        "list.yaml": "- 1\n- 2\n",
        "broken.yaml": "lr: [\n",
        "inf.yaml": "lr: .inf\n",
    }
    for name, content in files.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    for name in ("folder.py", "folder.ipynb"):
        (folder / name).mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_workspace(tmp_path_factory.mktemp("workspace"))


def copy_workspace(source: Path, target: Path) -> None:
    shutil.copytree(source, target, dirs_exist_ok=True)


def places(workspace: Path) -> dict[str, str]:
    """What ``{afile}`` and the like stand for in the cases."""
    return {"afile": str(workspace / "afile")}


def processes_of(home: Path) -> list[str]:
    """Command lines of the processes that work on ``home`` (a workload's supervisor, its runtime)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        line = " ".join(process.info.get("cmdline") or ())
        if str(home) in line:
            found.append(line)
    return found


def assert_nothing_created(home: Path) -> None:
    """No record in the store, no run directory (staged or final), no process of a workload."""
    db = home / "workbench.db"
    if db.is_file():
        store = Store(db)
        try:
            assert [w.id for w in store.list()] == []
        finally:
            store.close()
    runs = home / "runs"
    assert not runs.is_dir() or sorted(p.name for p in runs.iterdir()) == []
    assert processes_of(home) == []


def one_line(text: str) -> str:
    """``text`` without colours and its final newline, which must be a single line."""
    plain = _ANSI.sub("", text).rstrip("\n")
    assert plain and "\n" not in plain, f"not one line: {text!r}"
    assert "Traceback" not in plain, plain
    return plain
