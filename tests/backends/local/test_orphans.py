"""No process of a local workload outlives its end, even when its supervisor is killed (SIGKILL).

Real processes throughout: a pod whose code starts a grandchild in a session of its own
(``setsid``, so neither a process-group kill nor the supervisor's tree reaches it once the
supervisor is gone), its supervisor killed with SIGKILL, and nothing but ``/proc`` watched
until the record has been written by the guard: no workbench command reads it in between.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from workbench.config import load_settings
from workbench.runtime import cgroup, procs
from workbench.service import Service
from workbench.store import ACTIVE, Workload

BOUND = 10.0  # seconds: a generous upper bound on what takes well under one here
KILLED = "the supervisor was killed (SIGKILL); the workload's processes were stopped"
#: Starts a grandchild in a new session (setsid), prints its pid, then sleeps.
CODE = (
    "import subprocess, sys, time\n"
    "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True)\n"
    "print('grandchild', p.pid, flush=True)\n"
    "time.sleep(600)\n"
)


def within(condition: Callable[[], bool], bound: float = BOUND) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {bound}s")
        time.sleep(0.01)


def machine_allows_cgroups() -> bool:
    """Whether this machine lets a process make and populate a cgroup v2 here (a real probe)."""
    path = cgroup.create(f"probe-{os.getpid()}-{time.monotonic_ns()}")
    if path is None:
        return False
    probe = subprocess.Popen(["sleep", "30"], preexec_fn=lambda: cgroup.enter(path))
    try:
        return probe.pid in cgroup.members(path)
    finally:
        probe.kill()
        probe.wait()
        cgroup.kill(path)
        cgroup.remove(path)


def ppid(pid: int) -> int:
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text[text.rfind(")") + 2 :].split()[1])


def start(service: Service) -> tuple[Workload, int]:
    """A running pod with its setsid grandchild; read from the store and the log, never refreshed."""
    workload = service.launch({"kind": "pod", "code": CODE})
    log = Path(workload.run_dir) / "logs" / "output.log"
    within(lambda: "grandchild" in log.read_text() and service.store.get(workload.id).status == "running", 30)
    grandchild = int(log.read_text().split()[1])
    record = service.store.get(workload.id)
    assert record.pid and record.supervisor_pid
    assert procs.is_alive(grandchild) and procs.is_alive(record.pid)
    assert ppid(grandchild) == record.pid and os.getsid(grandchild) == grandchild  # its own session
    return record, grandchild


@pytest.fixture(params=["default", "tracking"])
def tracking(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Each test twice: with a cgroup where this machine allows one, and with process tracking only."""
    if request.param == "tracking":
        monkeypatch.setenv(cgroup.SWITCH_ENV, "off")
    return request.param == "tracking"


def supervision(service: Service, workload: Workload) -> list[int]:
    """The workload's supervisor and guard processes (they share its command line)."""
    return procs.with_argv_tail("workbench.runtime.supervisor", str(service.store.path), workload.id)


def test_sigkill_of_the_supervisor_leaves_no_process_and_a_true_record(
    service: Service, tracking: bool
) -> None:
    record, grandchild = start(service)
    name = cgroup.name_for(str(service.store.path), record.id)
    in_cgroup = (procs.cgroup_of(grandchild) or "").endswith(f"/{cgroup.SLICE}/{name}")

    os.kill(record.supervisor_pid, signal.SIGKILL)
    within(lambda: not procs.is_alive(grandchild) and not procs.is_alive(record.pid))
    within(lambda: supervision(service, record) == [])  # the guard has written the record and ended

    final = service.store.get(record.id)  # the store as written, no refresh
    assert (final.status, final.message) == ("failed", KILLED)
    assert procs.marked(record.run_dir) == []
    assert in_cgroup == (not tracking and machine_allows_cgroups())
    assert cgroup.find(name, []) == set()  # removed with the workload


def test_logs_follow_of_such_a_workload_ends_with_its_failure(
    service: Service, tracking: bool, tmp_path: Path
) -> None:
    record, grandchild = start(service)
    out = tmp_path / "follow.out"
    with out.open("w") as stdout:
        follower = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "logs", "-f", record.id],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
        )
    try:
        within(lambda: "grandchild" in out.read_text(), 30)  # it follows the running workload
        assert follower.poll() is None
        os.kill(record.supervisor_pid, signal.SIGKILL)
        _, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 1, err
    assert len(err.strip().splitlines()) == 1  # one line, naming what happened
    assert f"{record.id} failed: {KILLED}" in err
    assert f"grandchild {grandchild}" in out.read_text()
    within(lambda: not procs.is_alive(grandchild))


def test_with_guard_and_supervisor_both_killed_the_next_reader_stops_the_rest(
    service: Service, tracking: bool
) -> None:
    record, grandchild = start(service)
    for guard in set(supervision(service, record)) - {record.supervisor_pid}:
        os.kill(guard, signal.SIGKILL)
        within(lambda: not procs.is_alive(guard))  # noqa: B023 - waited on before the next
    os.kill(record.supervisor_pid, signal.SIGKILL)
    within(lambda: not procs.is_alive(record.supervisor_pid))
    assert procs.is_alive(grandchild)  # nobody left to stop it: the next reader of the record does

    final = service.get(record.id)
    assert (final.status, final.message) == (
        "failed",
        "the supervisor process ended without recording an outcome",
    )
    within(lambda: not procs.is_alive(grandchild) and not procs.is_alive(record.pid))
    assert cgroup.find(cgroup.name_for(str(service.store.path), record.id), []) == set()


def test_a_namesake_in_another_home_is_left_alone(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two WORKBENCH_HOMEs may both have a workload called ``twin``: ending one spares the other."""
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "other-home"))
    other = Service(load_settings())
    try:
        theirs = other.launch({"kind": "pod", "code": "import time\ntime.sleep(600)", "name": "twin"})
        within(lambda: other.store.get(theirs.id).status == "running", 30)
        theirs = other.store.get(theirs.id)
        ours = service.launch({"kind": "pod", "code": CODE, "name": "twin"})
        log = Path(ours.run_dir) / "logs" / "output.log"
        within(lambda: "grandchild" in log.read_text() and service.store.get(ours.id).status == "running", 30)
        ours = service.store.get(ours.id)
        assert ours.supervisor_pid
        os.kill(ours.supervisor_pid, signal.SIGKILL)
        within(lambda: supervision(service, ours) == [])
        assert service.store.get(ours.id).message == KILLED
        assert procs.is_alive(theirs.pid) and procs.is_alive(theirs.supervisor_pid, "twin")
        assert other.get(theirs.id).status == "running"
    finally:
        for workload in other.store.list(status=ACTIVE):
            other.cancel(workload.id)
        other.close()
