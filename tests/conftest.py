"""Shared fixtures: every test gets its own WORKBENCH_HOME and no user config."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.config import load_settings
from workbench.service import Service
from workbench.store import ACTIVE

# pytest-xdist: groups of tests kept on one worker, and tests that need the machine alone
from .parallel import (  # noqa: F401 - hooks
    pytest_collection_modifyitems,
    pytest_runtest_protocol,
    pytest_xdist_make_scheduler,
)

BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def wb_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated WORKBENCH_HOME; WORKBENCH_* (and MLFLOW_*: no tracking) from the outer
    environment removed."""
    for key in list(os.environ):
        if key.startswith(("WORKBENCH_", "MLFLOW_")):
            monkeypatch.delenv(key)
    home = tmp_path / "wbhome"
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    monkeypatch.setenv("WORKBENCH_CONFIG", str(tmp_path / "absent-config.yaml"))
    monkeypatch.setenv("WORKBENCH_KILL_GRACE", "2")
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return home


@pytest.fixture
def service(wb_home: Path) -> Iterator[Service]:
    """A service on the isolated home; cancels whatever a test leaves running."""
    svc = Service(load_settings())
    yield svc
    for workload in svc.store.list(status=ACTIVE):
        svc.cancel(workload.id)
    svc.close()


def assert_nothing_created(service: Service) -> None:
    """No record in the store and no run directory (staged or final) on disk."""
    assert service.store.list() == []
    runs = service.settings.runs_dir
    assert not runs.exists() or sorted(p.name for p in runs.iterdir()) == []
