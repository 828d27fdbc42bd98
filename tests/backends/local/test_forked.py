"""A pod's runner forked from its supervisor (runtime/forked.py): the code meets what a fresh
``python -c`` runner gives it, and every difference that a fork cannot hide starts a fresh one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.runtime import cgroup
from workbench.service import Service

from .test_launcher import runtime, start_launcher  # noqa: F401 - a fixture and its helper
from .test_orphans import machine_allows_cgroups


@pytest.fixture(autouse=True)
def warm(runtime: Path) -> Iterator[None]:  # noqa: F811
    """This test's own launcher, listening: a launch forks its supervisor, which forks the runner
    (a supervisor started the cold way has no room for the runner's command line: it execs)."""
    start_launcher(runtime)
    yield


#: What the code can see of the process it runs in, one ``name value`` line each.
PROBE = r"""
import os, signal, sys
fds = sorted(int(n) for n in os.listdir('/proc/self/fd'))
print('forked', 'workbench.runtime.supervise' in sys.modules)
print('argv', [os.path.basename(sys.argv[0]), *sys.argv[1:]])
print('path', sys.path[0] == os.getcwd(), sys.path[1])
print('cwd', os.getcwd())
print('own group', os.getpgid(0) == os.getpid())
print('stdin', repr(sys.stdin.read()))
print('fds', fds[:3], len(fds))
print('term', getattr(signal.getsignal(signal.SIGTERM), '__name__', signal.getsignal(signal.SIGTERM)))
print('hup', signal.getsignal(signal.SIGHUP), 'pipe', signal.getsignal(signal.SIGPIPE))
print('int', signal.getsignal(signal.SIGINT) is signal.default_int_handler)
print('env', os.environ.get('WB_PROBE'), 'WORKBENCH_RESULTS_KEY' in os.environ,
      'WORKBENCH_GATE_FD' in os.environ)
print('stdout', sys.stdout.encoding, sys.stdout.errors, sys.stdout.write_through,
      type(sys.stdout.buffer).__name__)
print('stderr', sys.stderr.errors, sys.stderr is sys.__stderr__, sys.stdout is sys.__stdout__)
cmdline = open('/proc/self/cmdline', 'rb').read().split(b'\0')
print('cmdline', cmdline[1:3] == [b'-c', b'from workbench.runtime.cell import entry; entry()'],
      cmdline[3] == os.environ['WORKBENCH_RUN_DIR'].encode())
print('main', __name__, __file__ == sys.argv[0])
"""


def probe(service: Service, cwd: Path, **env: str) -> dict[str, str]:
    workload = service.launch(
        {"kind": "pod", "code": PROBE, "env": {"WB_PROBE": "seen", **env}, "get": []}, cwd=str(cwd)
    )
    final = service.wait(workload.id, timeout=60)
    log = "".join(service.logs(final.id))
    assert final.status == "succeeded", log
    return dict(line.split(" ", 1) for line in log.splitlines())


def test_a_pods_runner_is_forked_and_sees_what_a_fresh_interpreter_would(
    service: Service, tmp_path: Path
) -> None:
    forked = probe(service, tmp_path)
    fresh = probe(service, tmp_path, PYTHONHASHSEED="7")  # a start-up variable: a new interpreter
    assert forked.pop("forked") == "True"
    assert fresh.pop("forked") == "False"
    assert forked == fresh
    assert forked["cwd"] == str(tmp_path)
    assert forked["env"] == "seen False False"
    assert forked["fds"] == "[0, 1, 2] 4"  # and the one listdir opened
    assert forked["stdin"] == "''"
    assert forked["term"] == "_stop"  # the runner's own handler (a cancel runs finally blocks)
    assert forked["cmdline"] == "True True"


def test_a_forked_runner_ends_as_an_interpreter_does(service: Service, tmp_path: Path) -> None:
    """Non-daemon threads are waited for, then atexit runs; files left open are flushed."""
    code = (
        "import atexit, sys, threading, time\n"
        "print('forked', 'workbench.runtime.supervise' in sys.modules)\n"
        "f = open('left-open.txt', 'w')\n"
        "f.write('kept')\n"
        "atexit.register(lambda: print('atexit ran'))\n"
        "def late():\n"
        "    time.sleep(0.3)\n"
        "    print('thread done')\n"
        "threading.Thread(target=late).start()\n"
        "print('main done')\n"
        "y = 41 + 1\n"
    )
    workload = service.launch({"kind": "pod", "code": code, "get": ["y"]}, cwd=str(tmp_path))
    final = service.wait(workload.id, timeout=60)
    assert final.status == "succeeded"
    assert "".join(service.logs(final.id)).splitlines() == [
        "forked True",
        "main done",
        "thread done",
        "atexit ran",
    ]
    assert (tmp_path / "left-open.txt").read_text() == "kept"
    assert service.results(final.id) == {"y": 42}


def test_an_exit_status_and_an_uncaught_error_are_recorded(service: Service, tmp_path: Path) -> None:
    code = "import sys\nprint('forked', 'workbench.runtime.supervise' in sys.modules)\nsys.exit(4)"
    final = service.wait(service.launch({"kind": "pod", "code": code}, cwd=str(tmp_path)).id, timeout=60)
    assert (final.status, final.exit_code) == ("failed", 4)
    assert "".join(service.logs(final.id)) == "forked True\n"
    code = "raise ValueError('no good')"
    final = service.wait(service.launch({"kind": "pod", "code": code}, cwd=str(tmp_path)).id, timeout=60)
    assert (final.status, final.exit_code) == ("failed", 1)
    assert final.message.endswith("ValueError: no good")


def test_a_python_path_in_the_environment_gets_a_fresh_interpreter(service: Service, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "wb_probe_module.py").write_text("WHERE = 'from PYTHONPATH'\n")
    code = (
        "import sys, wb_probe_module\n"
        "print('workbench.runtime.supervise' in sys.modules, wb_probe_module.WHERE)"
    )
    workload = service.launch({"kind": "pod", "code": code, "env": {"PYTHONPATH": str(lib)}}, cwd="/")
    final = service.wait(workload.id, timeout=60)
    assert final.status == "succeeded", "".join(service.logs(final.id))
    assert "".join(service.logs(final.id)) == "False from PYTHONPATH\n"


def test_a_forked_runners_first_line_runs_in_its_cgroup(service: Service, tmp_path: Path) -> None:
    """The supervisor moves the child before it opens the gate: the cell never runs outside."""
    code = (
        "import sys\n"
        "print(open('/proc/self/cgroup').read().strip().splitlines()[-1])\n"
        "print('forked', 'workbench.runtime.supervise' in sys.modules)\n"
    )
    workload = service.launch({"kind": "pod", "code": code}, cwd=str(tmp_path))
    final = service.wait(workload.id, timeout=60)
    assert final.status == "succeeded", final.message
    first, second = "".join(service.logs(workload.id)).splitlines()
    assert second == "forked True"
    name = cgroup.name_for(str(service.store.path), workload.id)
    assert first.endswith(f"/{cgroup.SLICE}/{name}") == machine_allows_cgroups()


def test_a_variable_read_by_a_pth_hook_gets_a_fresh_interpreter(service: Service, tmp_path: Path) -> None:
    """setuptools' distutils-precedence.pth reads SETUPTOOLS_USE_DISTUTILS as the interpreter starts."""
    code = "import sys\nprint('workbench.runtime.supervise' in sys.modules)"
    seen = []
    for env in ({}, {"SETUPTOOLS_USE_DISTUTILS": "stdlib"}):
        workload = service.launch({"kind": "pod", "code": code, "env": env}, cwd=str(tmp_path))
        final = service.wait(workload.id, timeout=60)
        assert final.status == "succeeded", final.message
        seen.append("".join(service.logs(final.id)))
    assert seen == ["True\n", "False\n"]
