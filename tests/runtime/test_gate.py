"""The gate a pod's runner waits at until the supervisor has moved it into its cgroup."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from workbench.runtime import cgroup, gate
from workbench.service import Service

from ..backends.local.test_orphans import machine_allows_cgroups

WAITER = "from workbench.runtime import gate\ngate.wait()\nprint('ran', flush=True)"


def _waiter(opened: bool) -> subprocess.CompletedProcess[str]:
    """A real process that waits at a gate; the gate opened, or its write end closed unopened."""
    read_end, write_end = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", WAITER],
            env={**os.environ, gate.GATE_ENV: str(read_end)},
            pass_fds=(read_end,),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.close(read_end)
        if opened:
            os.write(write_end, gate.OPEN)
    finally:
        os.close(write_end)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_an_opened_gate_lets_the_runner_through() -> None:
    done = _waiter(opened=True)
    assert (done.returncode, done.stdout) == (0, "ran\n")


def test_a_supervisor_gone_before_opening_means_nothing_runs() -> None:
    done = _waiter(opened=False)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip() == "workbench: the supervisor went away before the code could start"


def test_without_a_gate_the_runner_goes_on_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(gate.GATE_ENV, raising=False)
    gate.wait()
    assert gate.GATE_ENV not in os.environ


def test_a_pods_first_line_already_runs_in_its_cgroup_and_sees_no_gate(service: Service) -> None:
    code = (
        "import os\n"
        "print(open('/proc/self/cgroup').read().strip().splitlines()[-1])\n"
        f"print('gate' if {gate.GATE_ENV!r} in os.environ else 'no gate')\n"
    )
    workload = service.launch({"kind": "pod", "code": code})
    final = service.wait(workload.id, timeout=60)
    assert final.status == "succeeded", final.message
    first, second = "".join(service.logs(workload.id)).splitlines()[:2]
    assert second == "no gate"
    name = cgroup.name_for(str(service.store.path), workload.id)
    assert first.endswith(f"/{cgroup.SLICE}/{name}") == machine_allows_cgroups()
