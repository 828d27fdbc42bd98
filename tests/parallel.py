"""The suite under pytest-xdist (``make pytest`` runs ``pytest -n 2 --dist loadgroup``).

Hooks, imported by tests/conftest.py:

- groups: what must not be split over workers runs on one. A module whose tests share a
  module-scoped fixture (its Lab, kernel or server is made once, not once per worker), every
  MLflow test (one ``mlflow server`` per session) and every browser test (one Chromium and
  one `jupyter lab` at a time) get an ``xdist_group`` mark. pytest-xdist 3.8's own loadgroup
  reads the marks into the test ids, which pytest 9.2 no longer takes; so each worker writes
  the groups of its collection to the run's temporary folder and this scheduler reads them.
- ``@pytest.mark.alone``: a test that needs the machine to itself (its outcome depends on
  which of its own processes ends first, and a second worker's load reorders them) runs while
  the other worker waits between tests. Each test holds a shared lock while it runs and an
  ``alone`` test an exclusive one; a gate lock, held by the ``alone`` test while it waits,
  lets no other test start in the meantime.

Without xdist none of this does anything but add the marks.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

FOLDER_GROUPS = ("tests/tracking/", "tests/browser/")
WORKER = "PYTEST_XDIST_WORKER"


def _run_folder(config: pytest.Config) -> Path | None:
    """This run's temporary folder, shared by its workers (each has its own basetemp in it)."""
    if WORKER in os.environ:
        basetemp = config.option.basetemp  # pytest-xdist sets it to <run folder>/<worker id>
        return Path(basetemp).parent if basetemp else None
    factory = getattr(config, "_tmp_path_factory", None)  # where pytest-xdist takes it from
    return factory.getbasetemp() if factory is not None else None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    groups: dict[str, str] = {}
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        folder = next((f for f in FOLDER_GROUPS if path.startswith(f)), None)
        info = getattr(item, "_fixtureinfo", None)
        defs = info.name2fixturedefs.values() if info is not None else ()
        if folder is not None:
            item.add_marker(pytest.mark.xdist_group(folder.rstrip("/")))
        elif any(d[-1].scope in ("module", "class", "package") for d in defs if d):
            item.add_marker(pytest.mark.xdist_group(path))
        names = sorted(
            {
                str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                for m in item.iter_markers("xdist_group")
            }
        )
        if names:
            groups[item.nodeid] = "_".join(names)
    run = _run_folder(config)
    if WORKER in os.environ and run is not None:  # read by the scheduler once all workers collected
        target = run / f"groups-{os.environ[WORKER]}.json"
        target.with_suffix(".tmp").write_text(json.dumps(groups))
        target.with_suffix(".tmp").replace(target)


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: unknown without it (-p no:xdist)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

    class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
        """pytest-xdist's loadscope with a scope per group and one per test outside any."""

        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if nodeid.rfind("@") > nodeid.rfind("]"):  # a pytest that takes xdist's group suffix
                return nodeid.split("@")[-1]
            if self.groups is None:
                run = _run_folder(self.config)
                self.groups = {}
                for path in sorted(run.glob("groups-*.json")) if run is not None else ():
                    self.groups.update(json.loads(path.read_text()))
            return self.groups.get(nodeid, nodeid)

    return GroupScheduling(config, log)


@contextmanager
def _locked(path: Path, mode: int) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextmanager
def _machine_share(item: pytest.Item) -> Iterator[None]:
    run = _run_folder(item.config) if WORKER in os.environ else None
    if run is None:
        yield
        return
    gate, share = run / "alone-gate.lock", run / "alone-share.lock"
    if item.get_closest_marker("alone") is not None:
        with _locked(gate, fcntl.LOCK_EX), _locked(share, fcntl.LOCK_EX):
            yield
        return
    with _locked(gate, fcntl.LOCK_EX):
        share_fd = os.open(share, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(share_fd, fcntl.LOCK_SH)
    try:
        yield
    finally:
        os.close(share_fd)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)  # outermost: the wait is not the test's time
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    with _machine_share(item):
        yield
