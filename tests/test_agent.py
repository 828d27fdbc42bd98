"""The workbench agent (workbench.agent, workbench.agent_client): ``%%pod`` without pydantic in
the kernel, and the same outcome, output, records and errors as a kernel that launches itself.

Real parts throughout: a real agent on a real Unix socket, real kernels, real pods. Each test
gets its own runtime folder (``XDG_RUNTIME_DIR``), so its agent (and launcher) are its own.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench import agent_client
from workbench.runtime import daemons, launcher, procs
from workbench.service import Service

from .backends.local.test_launcher import assert_only_this_user_is_served, launchers, within
from .conftest import assert_nothing_created
from .kernel import Kernel

NO_PYDANTIC = "import sys\nprint('pydantic' in sys.modules, 'workbench.service' in sys.modules)"


def agents(folder: Path) -> list[int]:
    """Live agents listening under ``folder``."""
    found = []
    for pid in procs.with_argv_tail(str(agent_client.IDLE_SECONDS)):
        cmdline = procs.cmdline(pid)
        if agent_client.AGENT_MODULE.encode() in cmdline and str(folder).encode() in cmdline:
            found.append(pid)
    return found


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short private runtime folder; the agent, the launcher and their forks end with it."""
    folder = Path(tempfile.mkdtemp(prefix="wba-", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    daemons._spawned.clear()
    agent_client._kept.clear()
    yield folder / "workbench"
    for pid in [*launchers(folder), *agents(folder)]:
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(folder, ignore_errors=True)


def start_agent(runtime: Path) -> tuple[Path, int]:
    """Start this installation's agent and wait until it listens; its socket and pid."""
    path = agent_client.socket_path(fresh=True)
    assert path is not None and path.parent == runtime
    agent_client.spawn(path)
    within(lambda: path.exists() and len(agents(runtime.parent)) == 1)
    return path, agents(runtime.parent)[0]


@pytest.fixture
def kernels(runtime: Path, wb_home: Path) -> Iterator[list[Kernel]]:
    started: list[Kernel] = []
    yield started
    for k in started:
        k.stop()


def new_kernel(kernels: list[Kernel], **env: str) -> Kernel:
    k = Kernel(env)
    kernels.append(k)
    assert k.run("%load_ext workbench").error is None
    return k


@pytest.fixture
def k(runtime: Path, kernels: list[Kernel]) -> Kernel:
    """A kernel with the extension loaded, started once the agent listens."""
    start_agent(runtime)
    return new_kernel(kernels)


def test_a_pod_through_the_agent_keeps_pydantic_out_of_the_kernel(k: Kernel, service: Service) -> None:
    assert k.run("x = 20").error is None
    for expected in (21, 22):
        reply = k.run(f"%%pod --send x --get y\ny = x + {expected - 20}\nprint('computed', y)")
        assert reply.error is None, reply
        assert reply.stdout == f"computed {expected}\n"
        assert k.run("print(y, type(y).__name__)").stdout == f"{expected} int\n"
    assert k.run(NO_PYDANTIC).stdout == "False False\n"
    records = service.store.list()
    assert [w.status for w in records] == ["succeeded", "succeeded"]
    assert {w.spec["send"][0] for w in records} == {"x"}
    assert all(w.session for w in records)  # the kernel's session, for kernel-scoped cleanup


def test_without_an_agent_the_kernel_launches_itself_and_starts_one(
    runtime: Path, kernels: list[Kernel]
) -> None:
    k = new_kernel(kernels)
    reply = k.run("%%pod\nprint('here')")
    assert reply.error is None, reply
    assert reply.stdout == "here\n"
    assert k.run(NO_PYDANTIC).stdout == "True True\n"
    within(lambda: len(agents(runtime.parent)) == 1)


FAILING_CELLS = [
    "%%pod --gpus many\npass",
    "%%pod --send nowhere\npass",
    "%%pod --memory 'lots\npass",
    "%%pod --name Bad_Name\npass",
]


def _error(reply: object) -> str:
    text = reply.error_text  # type: ignore[attr-defined]
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_the_agent_gives_the_kernel_s_own_errors_and_creates_nothing(
    runtime: Path, kernels: list[Kernel], service: Service
) -> None:
    start_agent(runtime)
    through_agent = new_kernel(kernels)
    by_itself = new_kernel(kernels, WORKBENCH_AGENT="0")
    for cell in FAILING_CELLS:
        seen = [_error(k.run(cell)) for k in (through_agent, by_itself)]
        assert seen[0].startswith("workbench: "), (cell, seen)
        assert seen[0] == seen[1], cell
        assert_nothing_created(service)
    assert through_agent.run(NO_PYDANTIC).stdout == "False False\n"


def test_a_failed_pod_help_and_detach_read_as_before(k: Kernel, service: Service) -> None:
    reply = k.run("%%pod --name fails\nprint('before')\nraise SystemExit(3)")
    assert reply.stdout == "before\n"
    assert _error(reply) == (
        "workbench: fails failed: exited with code 3: before — `workbench logs fails` shows the whole output"
    )
    help_reply = k.run("%%pod --help\npass")
    assert help_reply.error is None and "--send" in help_reply.stdout and "--detach" in help_reply.stdout
    detached = k.run("%%pod --name later --detach\nprint('done')")
    assert detached.error is None, detached
    assert detached.stdout == "later launched; `%wb logs later` to follow\n"
    assert service.wait("later", timeout=60).status == "succeeded"
    assert k.run(NO_PYDANTIC).stdout == "False False\n"


def test_an_interrupt_cancels_the_workload_through_the_agent(k: Kernel, service: Service) -> None:
    msg_id = k.submit("%%pod --name sleeper\nimport time\nprint('sleeping', flush=True)\ntime.sleep(300)")
    within(lambda: "sleeping" in "".join(service.logs("sleeper")) if service.store.list() else False)
    k.interrupt()
    reply = k.collect(msg_id)
    assert "interrupted; sleeper cancelled" in _error(reply)
    assert service.get("sleeper").status == "cancelled"
    after = k.run("%%pod\nprint('next')")  # the kernel's next cell takes a new connection
    assert after.error is None and after.stdout == "next\n"


def test_the_kernel_s_environment_and_folder_reach_the_pod(k: Kernel, tmp_path: Path) -> None:
    for value in ("one", "two"):  # a changed environment between cells: a new fork takes it on
        setup = f"import os\nos.environ['WB_AGENT_TEST'] = '{value}'\nos.chdir({str(tmp_path)!r})"
        assert k.run(setup).error is None
        reply = k.run("%%pod\nimport os\nprint(os.environ['WB_AGENT_TEST'], os.getcwd())")
        assert reply.error is None, reply
        assert reply.stdout == f"{value} {tmp_path}\n"


def test_a_kernel_that_goes_away_leaves_its_workload_running(
    runtime: Path, k: Kernel, service: Service, tmp_path: Path
) -> None:
    gate = tmp_path / "release"
    k.submit(
        "%%pod --name outlives\nimport os, time\nprint('first', flush=True)\n"
        f"while not os.path.exists({str(gate)!r}):\n    time.sleep(0.02)\nprint('second')"
    )
    within(lambda: "first" in "".join(service.logs("outlives")) if service.store.list() else False)
    pid = k.km.provisioner.pid  # type: ignore[union-attr]
    os.kill(pid, signal.SIGKILL)  # the kernel dies while its cell follows the workload
    within(lambda: not procs.is_alive(pid))  # a zombie counts as gone
    within(lambda: len(agents(runtime.parent)) == 1)  # its fork of the agent left; the agent stays
    assert service.get("outlives").status == "running"
    gate.touch()
    final = service.wait("outlives", timeout=60)
    assert final.status == "succeeded"
    assert "".join(service.logs("outlives")) == "first\nsecond\n"


def test_a_stale_request_falls_back_and_the_agent_leaves(runtime: Path) -> None:
    path, pid = start_agent(runtime)
    request = {**launcher.context(), "stamp": "0" * 20, "python": sys.executable, "kind": "pod",
               "line": "", "code": "print(1)", "session": None}  # fmt: skip
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(path))
        daemons.send(sock, request)
        assert daemons.receive(sock) == {"fallback": "stale"}
    within(lambda: not procs.is_alive(pid))
    assert not path.exists()


def test_the_socket_is_private_whatever_the_umask(runtime: Path) -> None:
    old = os.umask(0)
    try:
        path, _ = start_agent(runtime)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(runtime).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root")
def test_another_user_is_refused(runtime: Path) -> None:
    assert_only_this_user_is_served(runtime, *start_agent(runtime))


def test_a_fork_compares_the_whole_context_the_launcher_reproduces() -> None:
    assert set(launcher.CONTEXT_KEYS) == set(launcher.context())


def test_the_switch_turns_the_agent_off(monkeypatch: pytest.MonkeyPatch) -> None:
    for value in ("0", "off", "no", "false"):
        monkeypatch.setenv(agent_client.SWITCH_ENV, value)
        assert not agent_client.enabled()
    monkeypatch.setenv(agent_client.SWITCH_ENV, "1")
    assert agent_client.enabled()
    monkeypatch.setenv(procs.MARKER_ENV, "/somewhere/else")  # inside a workload: the kernel's own path
    assert not agent_client.enabled()


def test_a_launch_through_the_agent_shows_its_widget_where_widgets_are_wanted(
    runtime: Path, kernels: list[Kernel]
) -> None:
    start_agent(runtime)
    k = new_kernel(kernels, WORKBENCH_WIDGETS="1")
    reply = k.run("%%pod --name shown\nprint('with a widget')")
    assert reply.error is None, reply
    assert reply.stdout == "with a widget\n"
    assert reply.results == ["shown (pod on local)"]


def test_an_idle_kernel_s_fork_leaves_and_its_next_cell_still_runs(
    runtime: Path, kernels: list[Kernel]
) -> None:
    path = agent_client.socket_path(fresh=True)
    assert path is not None
    daemons.spawn(path, agent_client.AGENT_MODULE, "2")  # idle after 2 s, its forks too
    within(lambda: path.exists())
    k = new_kernel(kernels)
    assert k.run("%%pod\nprint('first')").stdout == "first\n"
    assert k.run(NO_PYDANTIC).stdout == "False False\n"  # through the agent
    within(lambda: agents(runtime.parent) == [])  # the agent and the kernel's fork left
    reply = k.run("%%pod\nprint('second')")
    assert reply.error is None, reply
    assert reply.stdout == "second\n"


def test_the_agent_never_unpickles_what_the_kernel_sends(k: Kernel, service: Service, tmp_path: Path) -> None:
    """A --send value whose unpickling leaves a mark: only the workload's own process leaves one."""
    marks = tmp_path / "marks"
    marks.mkdir()
    setup = (
        "import os\n"
        "def _mark(folder):\n"
        "    open(os.path.join(folder, str(os.getpid())), 'w').close()\n"
        "    return 'marked'\n"
        "class Marker:\n"
        f"    def __reduce__(self):\n        return (_mark, ({str(marks)!r},))\n"
        "m = Marker()\n"
    )
    assert k.run(setup).error is None
    reply = k.run("%%pod --name unpickled --send m\nprint(m)")
    assert reply.error is None, reply
    assert reply.stdout == "marked\n"
    assert [int(p.name) for p in marks.iterdir()] == [service.get("unpickled").pid]
