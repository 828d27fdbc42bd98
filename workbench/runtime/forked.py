"""A pod's cell runner forked from its supervisor, instead of a new interpreter.

A pod's runner is ``python -c "from workbench.runtime.cell import entry; entry()" RUN_DIR``.
The supervisor that starts it was itself forked from the warm launcher (or booted the cold
way), so it is already an interpreter of the same executable with the runtime imported. When
nothing would tell the two apart, the runner is a fork of the supervisor: no interpreter
boot, no imports (~35 ms of a ~15 ms cell on these machines). What a fresh interpreter would
differ in is checked first, and any difference starts it the usual way (:func:`usable`):

- the command is the runner's own (:data:`.cell.START`) with this process's executable;
- every variable that shapes how an interpreter starts (``PYTHON*`` but ``PYTHONUNBUFFERED``,
  which is applied here; the locale's; those of common ``.pth`` hooks, see :data:`_SHAPING`)
  has the value this interpreter started with, which ran with no options of its own (``-I``,
  ``-S``, ``-X``…);
- the site folders and their ``.pth`` files are those this interpreter read (a package
  installed since then as a path entry, or a user site made since, is seen only by a fresh one);
- this process's command line has room for the runner's (a launcher's child has, a cold
  supervisor has not), so ``ps`` and :func:`.procs.is_alive` see the runner's own.

The child is what the exec would have made: a process group of its own; stdin ``/dev/null``,
stdout and stderr the log (unbuffered when the environment says so, as ``-u``); no other
descriptor; signal handlers as a fresh interpreter sets them; the workload's environment,
working directory, ``sys.argv`` and ``sys.path[0]`` as ``python -c`` has them; its command
line. It waits at a gate (a pipe) until the supervisor has moved it into the workload's
cgroup. At the end it does what the interpreter's exit does (the code's non-daemon threads
joined, ``atexit`` callbacks, the code's objects finalized, output flushed) and leaves with
``os._exit``, never returning into the supervisor's frames. What stays different: modules the
supervisor had loaded are already in ``sys.modules``; the string hash seed is the launcher's
(set ``PYTHONHASHSEED`` in the workload's environment for a fresh interpreter); and
``/proc/PID/environ``, which keeps a process's environment as of its exec, shows the
launcher's. Every process the code execs gets the workload's environment, so the guard's last
sweep (:func:`.procs.marked`) finds those; the runner itself and what it forks are found by
their process group, their cgroup and the subreapers.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys

from . import gate, procs

TYPE_CHECKING = False
if TYPE_CHECKING:
    import io
    from collections.abc import Callable

    #: Called with the runner's pid once it is in its cgroup: whether it may run (it is recorded).
    Ready = Callable[[int], bool]

#: Variables read at an interpreter's start besides ``PYTHON*``: the locale, and those of the
#: ``.pth`` start-up hooks commonly installed (setuptools' distutils shim, coverage, pytest-cov).
_SHAPING = ("LANG", "LC_ALL", "LC_CTYPE", "SETUPTOOLS_USE_DISTUTILS", "COVERAGE_PROCESS_START")


def _shapes(name: str) -> bool:
    if name.startswith("PYTHON"):
        return name != "PYTHONUNBUFFERED"
    return name in _SHAPING or name.startswith("COV_CORE_")


def _site_files() -> frozenset[str]:
    """The site folders that exist and the ``.pth`` files in them (what ``site`` reads at start)."""
    import site

    folders = [*site.getsitepackages(), site.getusersitepackages()]
    found: set[str] = set()
    for folder in folders:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        found.add(folder)  # a user site made since is put on a fresh interpreter's path
        found.update(os.path.join(folder, name) for name in names if name.endswith(".pth"))
    return frozenset(found)


#: What this interpreter started with (taken when the launcher or supervisor loads this module).
_BOOT_ENV = {name: value for name, value in os.environ.items() if _shapes(name)}
_BOOT_SITE = _site_files() if not sys.flags.no_site else frozenset()
_PLAIN = not (
    sys.flags.isolated
    or sys.flags.no_site
    or sys.flags.no_user_site
    or sys.flags.ignore_environment
    or sys.flags.safe_path
    or sys.flags.dev_mode
    or sys.warnoptions
    or sys._xoptions
)


def usable(argv: list[str], env: dict[str, str]) -> bool:
    """Whether the runner ``argv`` with ``env`` may be a fork of this process (see above)."""
    from .cell import START

    if not _PLAIN or len(argv) < 3 or argv[0] != sys.executable or tuple(argv[1:3]) != START:
        return False
    if {name: value for name, value in env.items() if _shapes(name)} != _BOOT_ENV:
        return False
    start, end = procs.argv_area()
    if len(procs.command_line(argv)) >= end - start:  # ps and procs.alive must see the runner's own
        return False
    return _site_files() == _BOOT_SITE


class Forked:
    """The forked runner, with what the supervisor uses of a ``subprocess.Popen``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: nothing more can be known
                self.returncode = 0
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is not None or timeout is None:
            if self.returncode is None:
                try:
                    self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
                except ChildProcessError:
                    self.returncode = 0
            return self.returncode
        try:
            pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:  # reaped elsewhere
            return self.wait()
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            if not poller.poll(timeout * 1000) and self.poll() is None:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
        finally:
            os.close(pidfd)
        return self.wait()


def start(
    argv: list[str], env: dict[str, str], cwd: str | None, log_path: str, group: str | None, ready: Ready
) -> tuple[Forked, bool]:
    """Fork the runner ``argv`` (see :func:`usable`), move it into ``group`` and let it go once
    ``ready(pid)``; the runner, and whether it was let go (see :func:`.gate.let_through`)."""
    if cwd:
        os.stat(cwd)  # a working directory that is gone fails the start here, as Popen's would
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    gate_r, gate_w = os.pipe()
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                os.close(gate_w)
                status = _child(argv, env, cwd, log_fd, gate_r)
            except BaseException as exc:  # before the code ran: say why in the log
                with_reason = f"workbench: could not start the runner: {exc!r}\n"
                os.write(2, with_reason.encode(errors="replace"))
            finally:
                os._exit(status)
        os.close(gate_r)
        gate_r = -1
        return Forked(pid), gate.let_through(gate_w, pid, group, lambda: ready(pid))
    finally:
        os.close(log_fd)
        os.close(gate_w)
        if gate_r >= 0:
            os.close(gate_r)


def _child(argv: list[str], env: dict[str, str], cwd: str | None, log_fd: int, gate_r: int) -> int:
    """The forked runner: become what the exec would have made, wait at the gate, run the cell."""
    import io

    procs.set_argv(procs.command_line(argv))  # first: ps, and the supervisor's finders, tell it apart at once
    import gc

    gc.freeze()  # the supervisor's objects are never the code's garbage: collections skip them
    os.setpgid(0, 0)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # the supervisor's handlers: a fresh one has none
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.closerange(3, gate_r)
    os.closerange(gate_r + 1, 1 << 16)
    if cwd:
        os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    import time

    time.tzset()  # what a fresh interpreter takes from the environment at start: TZ, TMPDIR
    if "tempfile" in sys.modules:  # loaded already: forget the folder it found then
        import tempfile

        tempfile.tempdir = None
    if not gate.passed(gate_r):
        os.write(2, gate.GONE.encode() + b"\n")
        return 1
    unbuffered = bool(env.get("PYTHONUNBUFFERED"))
    encoding = getattr(sys.__stdout__, "encoding", None) or "utf-8"
    errors = getattr(sys.__stdout__, "errors", None) or "strict"
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding=encoding)  # type: ignore[misc]
    sys.stdout = sys.__stdout__ = _stream(1, encoding, errors, unbuffered)  # type: ignore[misc]
    sys.stderr = sys.__stderr__ = _stream(2, encoding, "backslashreplace", unbuffered)  # type: ignore[misc]
    sys.argv = ["-c", *argv[3:]]
    sys.path[0] = ""  # as ``python -c`` has it (the runner puts the working directory first itself)
    import importlib

    importlib.invalidate_caches()
    from . import cell

    try:
        status = cell.outcome(sys.argv[1:])
    except BaseException:  # what the interpreter prints of an uncaught error
        import traceback

        traceback.print_exc()
        status = 1
    return _finish(status)


def _stream(fd: int, encoding: str, errors: str, unbuffered: bool) -> io.TextIOWrapper:
    import io

    raw = io.FileIO(fd, "w", closefd=False)
    if unbuffered:
        return io.TextIOWrapper(raw, encoding=encoding, errors=errors, write_through=True)
    return io.TextIOWrapper(io.BufferedWriter(raw), encoding=encoding, errors=errors, line_buffering=False)


def _finish(status: int) -> int:
    """What the interpreter's exit does before the process ends; ``status``."""
    import atexit
    import gc
    import threading

    from . import cell

    if "torch.distributed" in sys.modules:
        cell._exit(status)  # leaves at once (gloo/nccl threads: see there)
    threading._shutdown()  # type: ignore[attr-defined]  # the code's non-daemon threads
    atexit._run_exitfuncs()
    for namespace in cell._NAMESPACES:  # the code's objects, freed as the interpreter frees a
        namespace.clear()  # module's: a file it left open is flushed before its buffer goes
    cell._NAMESPACES.clear()
    gc.collect()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    return status
