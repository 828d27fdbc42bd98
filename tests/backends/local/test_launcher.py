"""The warm launcher (workbench.runtime.launcher): a fork server that starts local workloads.

Real processes throughout: a real launcher on a real Unix socket, real pods, real kills. Each
test gets its own runtime folder (``XDG_RUNTIME_DIR``), so its launcher is its own.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from workbench.backends.local import launch
from workbench.runtime import daemons, launcher, procs
from workbench.service import Service

BOUND = 30.0  # seconds: a generous upper bound on what takes well under one here


def within(condition: Callable[[], bool], bound: float = BOUND) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {bound}s")
        time.sleep(0.01)


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short private runtime folder (a socket path must fit in 108 bytes); its launcher ends with it."""
    folder = Path(tempfile.mkdtemp(prefix="wbl-", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    daemons._spawned.clear()
    yield folder / "workbench"
    for pid in launchers(folder):
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(folder, ignore_errors=True)


def launchers(folder: Path) -> list[int]:
    """Live launcher processes listening under ``folder``."""
    found = []
    for pid in procs.with_argv_tail("-m", launcher.LAUNCHER_MODULE):
        cmdline = procs.cmdline(pid)
        if str(folder).encode() in cmdline:
            found.append(pid)
    return found


def start_launcher(runtime: Path) -> tuple[Path, int]:
    """Start this installation's launcher and wait until it listens; its socket and pid."""
    path = launch.socket_path()
    assert path is not None and path.parent == runtime
    launch._spawn(path)
    within(lambda: path.exists() and len(launchers(runtime.parent)) == 1)
    return path, launchers(runtime.parent)[0]


def guard_of(service: Service, workload_id: str) -> int:
    """The workload's guard: the one of its two supervision processes that is not the supervisor."""
    record = service.store.get(workload_id)
    pids = set(procs.with_argv_tail("workbench.runtime.supervisor", str(service.store.path), workload_id))
    (guard,) = pids - {record.supervisor_pid}
    return guard


def started_warm(pid: int) -> bool:
    """A process forked by the launcher keeps the launcher's first environment (no WORKBENCH_*);
    one started the cold way has the launching process's (this test's WORKBENCH_HOME)."""
    return b"WORKBENCH_HOME=" not in Path(f"/proc/{pid}/environ").read_bytes()


def running(service: Service, code: str) -> str:
    workload = service.launch({"kind": "pod", "code": code})
    within(lambda: service.store.get(workload.id).status == "running")
    return workload.id


@pytest.fixture
def context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """This process with a working directory, a variable, a lower open-files limit and an
    ignored signal of its own (none of which the launcher has); the limit."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WB_LAUNCHER_PROBE", "from the kernel")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    mine = min(soft, 1000) - 7
    resource.setrlimit(resource.RLIMIT_NOFILE, (mine, hard))
    previous = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    yield mine
    signal.signal(signal.SIGUSR2, previous)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


PROBE = (
    "import os, resource, signal\n"
    "print(os.getcwd(), os.environ['WORKBENCH_WORKLOAD_ID'], os.environ['WB_LAUNCHER_PROBE'],\n"
    "      resource.getrlimit(resource.RLIMIT_NOFILE)[0],\n"
    "      signal.getsignal(signal.SIGUSR2) == signal.SIG_IGN, os.getpgid(0) == os.getpid())\n"
)


def test_a_pod_started_by_the_launcher_runs_like_a_cold_one(
    service: Service, runtime: Path, tmp_path: Path, context: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    start_launcher(runtime)
    outputs = []
    for switch in ("1", "0"):  # through the launcher, then the cold way: the same
        monkeypatch.setenv(launch.SWITCH_ENV, switch)
        workload = service.launch({"kind": "pod", "code": PROBE})
        final = service.wait(workload.id, timeout=60)
        assert final.status == "succeeded", final.message
        outputs.append("".join(service.logs(workload.id)).replace(workload.id, "ID"))
    assert outputs[0] == f"{tmp_path} ID from the kernel {context} True True\n"
    assert outputs[0] == outputs[1]
    monkeypatch.setenv(launch.SWITCH_ENV, "1")
    log = Path(final.run_dir) / "logs" / "supervisor.log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    name = running(service, "import time\ntime.sleep(600)")
    guard = guard_of(service, name)
    assert started_warm(guard)
    assert os.getsid(guard) != os.getsid(0)  # a session of its own
    cmdline = Path(f"/proc/{guard}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    assert cmdline == [sys.executable.encode(), b"-m", b"workbench.runtime.supervisor",
                       str(service.store.path).encode(), name.encode()]  # fmt: skip
    assert service.cancel(name).status == "cancelled"


def test_a_workload_outlives_the_launcher_and_the_process_that_asked(
    wb_home: Path, runtime: Path, tmp_path: Path
) -> None:
    _, launcher_pid = start_launcher(runtime)
    gate = tmp_path / "release"
    code = f"import os, time\nwhile not os.path.exists({str(gate)!r}):\n    time.sleep(0.02)\nprint('done')"
    asker = (
        "import sys\nfrom workbench.service import Service\n"
        "w = Service().launch({'kind': 'pod', 'code': sys.argv[1]})\nprint(w.id)\n"
    )
    out = subprocess.run([sys.executable, "-c", asker, code], capture_output=True, text=True, check=True)
    name = out.stdout.strip()
    service = Service()
    try:
        within(lambda: service.get(name).status == "running")
        assert started_warm(guard_of(service, name))
        os.kill(launcher_pid, signal.SIGKILL)
        within(lambda: not procs.is_alive(launcher_pid))
        gate.touch()
        final = service.wait(name, timeout=60)
        assert (final.status, final.exit_code) == ("succeeded", 0)
        assert "".join(service.logs(name)) == "done\n"
    finally:
        service.close()


def test_cancel_through_the_launcher_stops_the_whole_tree(service: Service, runtime: Path) -> None:
    start_launcher(runtime)
    code = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'],\n"
        "                     start_new_session=True)\n"
        "print('grandchild', p.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    workload = service.launch({"kind": "pod", "code": code})
    log = Path(workload.run_dir) / "logs" / "output.log"
    within(lambda: "grandchild" in log.read_text())
    grandchild = int(log.read_text().split()[1])
    assert started_warm(guard_of(service, workload.id))
    final = service.cancel(workload.id)
    assert (final.status, final.message) == ("cancelled", "cancelled")
    within(lambda: not procs.is_alive(grandchild) and not procs.is_alive(final.pid))
    within(
        lambda: procs.with_argv_tail("workbench.runtime.supervisor", str(service.store.path), final.id) == []
    )


def test_timeout_and_memory_limit_hold_through_the_launcher(service: Service, runtime: Path) -> None:
    start_launcher(runtime)
    slow = service.launch({"kind": "pod", "code": "import time\ntime.sleep(600)", "timeout": "1s"})
    big = service.launch(
        {
            "kind": "pod",
            "code": "import time\nx = bytearray(300 * 2**20)\ntime.sleep(600)",
            "resources": {"memory": "100Mi"},
        }
    )
    slow_final = service.wait(slow.id, timeout=60)
    assert slow_final.status == "failed" and slow_final.message.startswith("timed out after")
    big_final = service.wait(big.id, timeout=60)
    assert big_final.status == "failed" and big_final.message.startswith("OOMKilled")


def test_without_a_launcher_the_launch_goes_cold_and_starts_one(service: Service, runtime: Path) -> None:
    name = running(service, "import time\ntime.sleep(600)")
    assert not started_warm(guard_of(service, name))
    within(lambda: len(launchers(runtime.parent)) == 1)  # for the next launch
    path = launch.socket_path()
    assert path is not None
    within(path.exists)
    assert service.cancel(name).status == "cancelled"
    warm = running(service, "import time\ntime.sleep(600)")
    assert started_warm(guard_of(service, warm))
    assert service.cancel(warm).status == "cancelled"


def test_switched_off_it_is_neither_used_nor_started(
    service: Service, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start_launcher(runtime)
    monkeypatch.setenv(launch.SWITCH_ENV, "0")
    name = running(service, "import time\ntime.sleep(600)")
    assert not started_warm(guard_of(service, name))
    assert service.cancel(name).status == "cancelled"
    monkeypatch.setenv(launch.SWITCH_ENV, "1")
    monkeypatch.setenv(procs.MARKER_ENV, "/somewhere/else")  # inside a workload: its tree, its cgroup
    assert not launch.enabled()


def test_a_dead_launcher_s_socket_falls_back(service: Service, runtime: Path) -> None:
    path = launch.socket_path()
    assert path is not None
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))  # left behind by a launcher killed with SIGKILL: nobody listens
    dead.close()
    daemons._spawned[str(path)] = time.monotonic()  # start no new one: this launch must fall back
    final = service.wait(service.launch({"kind": "pod", "code": "print('cold')"}).id, timeout=60)
    assert final.status == "succeeded"
    assert "".join(service.logs(final.id)) == "cold\n"


def test_a_launcher_that_never_answers_starts_it_exactly_once(service: Service, runtime: Path) -> None:
    """The answer is lost: the backend's claim of supervisor.log decides, and only one runs."""
    path = launch.socket_path()
    assert path is not None
    mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    mute.bind(str(path))
    mute.listen(1)

    def hang_up() -> None:
        conn, _ = mute.accept()
        daemons.receive(conn)
        conn.close()  # it had the request and closed without a word

    answering = threading.Thread(target=hang_up)
    answering.start()
    try:
        workload = service.launch({"kind": "pod", "code": "print('once')"})
        answering.join()
        final = service.wait(workload.id, timeout=60)
    finally:
        mute.close()
    assert final.status == "succeeded"
    assert "".join(service.logs(final.id)) == "once\n"


def test_a_stale_request_is_refused_and_the_launcher_leaves(runtime: Path, tmp_path: Path) -> None:
    path, pid = start_launcher(runtime)
    request = {**launcher.context(), "stamp": "0" * 20, "python": sys.executable, "db": "db",
               "id": "x", "run_dir": str(tmp_path)}  # fmt: skip
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(path))
        daemons.send(sock, request)
        assert daemons.receive(sock) == {"ok": False, "reason": "stale"}
    within(lambda: not procs.is_alive(pid))
    assert not path.exists()
    assert not (tmp_path / "logs").exists()  # nothing was forked


def test_the_socket_is_private_whatever_the_umask(runtime: Path) -> None:
    old = os.umask(0)
    try:
        path, _ = start_launcher(runtime)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(runtime).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.stat(path).st_uid == os.getuid()


def _connect_as(uid: int, path: Path) -> str:
    """From a child that switched to ``uid``: what connecting and asking gave."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        outcome = "answered"
        try:
            os.setgid(uid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(10)
                sock.connect(str(path))
                daemons.send(sock, {"stamp": launcher.stamp()})
                daemons.receive(sock)
        except PermissionError:
            outcome = "denied"
        except (ConnectionError, TimeoutError):
            outcome = "closed"
        os.write(write, outcome.encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as fh:
        return fh.read()


def assert_only_this_user_is_served(runtime: Path, path: Path, pid: int) -> None:
    """Another uid cannot reach the helper's socket, nor be served once the files are opened up."""
    assert _connect_as(65534, path) == "denied"  # the folder and the socket are closed to others
    for folder in (runtime.parent, runtime):
        os.chmod(folder, 0o711)
    os.chmod(path, 0o666)  # even opened up, the helper checks who is asking (SO_PEERCRED)
    try:
        assert _connect_as(65534, path) == "closed"
    finally:
        os.chmod(path, 0o600)
        for folder in (runtime.parent, runtime):
            os.chmod(folder, 0o700)
    assert procs.is_alive(pid)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root")
def test_another_user_is_refused(runtime: Path) -> None:
    assert_only_this_user_is_served(runtime, *start_launcher(runtime))


def test_what_the_launcher_keeps_loaded_is_in_its_stamp() -> None:
    """A change to any module the launcher has loaded makes a new launcher (the old one leaves)."""
    code = (
        "import sys\nfrom workbench.runtime import guard, supervise, supervisor, launcher\n"
        "print('\\n'.join(m.__file__ for n, m in sys.modules.items() if n.startswith('workbench')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    package = Path(launcher.__file__).parent.parent
    loaded = {str(Path(f).relative_to(package)) for f in out.split()}
    assert loaded <= set(launcher.STAMP_FILES), loaded - set(launcher.STAMP_FILES)
