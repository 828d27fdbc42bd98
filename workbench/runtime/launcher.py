"""The warm launcher: a per-user fork server that starts local workloads' guards.

Starting a workload's supervision the cold way (``python -m workbench.runtime.supervisor DB
ID``) boots an interpreter and imports the store before anything runs. The launcher is one
long-lived process per user and installation (``python -m workbench.runtime.launcher
SOCKET``) that has already imported the guard and the supervisor; the backend asks it over a
Unix socket, and a workload then costs a fork. The child it forks is what the cold path makes:

- detached: a session of its own (``setsid``), reparented away from the launcher by a second
  fork, so it outlives the launcher and the kernel that asked;
- the asking process's context: its environment, working directory, umask, resource limits,
  nice value, CPU affinity and ignored signals (each checked before the fork: what cannot be
  reproduced is refused, and the backend uses the cold path);
- the same command line (``python -m workbench.runtime.supervisor DB ID``, written over the
  launcher's padded one), so ``/proc/PID/cmdline`` names the workload as before;
- stdin ``/dev/null``, stdout and stderr ``logs/supervisor.log``, no other descriptor.

Exactly one start per workload: whoever creates ``logs/supervisor.log`` (``O_EXCL``) starts
it. The forked child claims it before anything else and leaves at once when it cannot, so a
backend that lost the launcher's answer can claim it itself and start the cold way.

Only peers of this user (``SO_PEERCRED``) are served; the socket is 0600 in a 0700 folder.
The launcher leaves after an idle period, or as soon as a file it loaded has changed
(:func:`stamp`). The request and answer are one length-prefixed JSON message each.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import zlib

from . import daemons, procs

#: What the backend runs; the launcher's own command line is padded so a child can rewrite it.
LAUNCHER_MODULE = "workbench.runtime.launcher"
#: Seconds without a request after which the launcher exits.
IDLE_SECONDS = 600.0
#: Bytes of command line a forked child may use for ``python -m …supervisor DB ID``.
ARGV_ROOM = 4096
#: Files (relative to the ``workbench`` package) whose code the launcher keeps loaded: a change
#: to any of them makes a new stamp (a new launcher) and ends the old one.
STAMP_FILES = (
    "__init__.py",
    "_version.py",
    "errors.py",
    "private.py",
    "store.py",
    "store_file.py",
    "usage_store.py",
    "runtime/__init__.py",
    "runtime/cell.py",
    "runtime/cgroup.py",
    "runtime/daemons.py",
    "runtime/disk.py",
    "runtime/forked.py",
    "runtime/gate.py",
    "runtime/guard.py",
    "runtime/launcher.py",
    "runtime/procs.py",
    "runtime/results.py",
    "runtime/supervise.py",
    "runtime/supervisor.py",
    "runtime/track_end.py",
    "runtime/usage.py",
)
_RLIMITS = tuple(name for name in dir(__import__("resource")) if name.startswith("RLIMIT_"))


def stamp(files: tuple[str, ...] = STAMP_FILES) -> str:
    """What the launcher's code is: interpreter, package folder, and its ``files``' sizes and times."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parts = [sys.executable, sys.version, package]
    for name in files:
        try:
            info = os.stat(os.path.join(package, name))
            parts.append(f"{name}:{info.st_size}:{info.st_mtime_ns}")
        except OSError:
            parts.append(f"{name}:-")
    data = "\n".join(parts).encode()  # a digest without hashlib: OpenSSL stays out of the launcher
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}{len(data) & 0xFFFF:04x}"


def _umask() -> int:
    """This process's umask, read without changing it (another thread may be creating a file)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    raise OSError("no Umask in /proc/self/status")


#: What :func:`context` holds (a forked helper compares requests by these).
CONTEXT_KEYS = ("cwd", "cwd_id", "env", "umask", "rlimits", "nice", "affinity", "ignored", "groups")


def context() -> dict[str, object]:
    """This process's context that a supervisor inherits: what the launcher reproduces.

    Raises:
        OSError: the working directory is gone (only the cold path can inherit it).
    """
    import resource

    cwd = os.getcwd()
    info = os.stat(cwd)
    mask = _umask()
    ignored = []
    for sig in signal.valid_signals():
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(sig) == signal.SIG_IGN:
                ignored.append(int(sig))
    return {
        "cwd": cwd,
        "cwd_id": [info.st_dev, info.st_ino],
        "env": dict(os.environ),
        "umask": mask,
        "rlimits": {name: list(resource.getrlimit(getattr(resource, name))) for name in _RLIMITS},
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "affinity": sorted(os.sched_getaffinity(0)),
        "ignored": ignored,
        "groups": sorted(os.getgroups()),
    }


# -- the server ------------------------------------------------------------------------------


def _refusal(request: dict[str, object], argv: bytes, room: int, own: str) -> str | None:
    """Why the launcher cannot start this request as the cold path would; None when it can."""
    import resource

    if request.get("stamp") != own or stamp() != own:
        return "stale"
    if len(argv) >= room:
        return "command line too long"
    cwd = str(request["cwd"])
    try:
        info = os.stat(cwd)
    except OSError:
        return "working directory gone"
    if [info.st_dev, info.st_ino] != request["cwd_id"]:
        return "working directory replaced"
    if request["groups"] != sorted(os.getgroups()):
        return "other groups"
    limits = request["rlimits"]
    assert isinstance(limits, dict)
    for name, (soft, hard) in limits.items():
        number = getattr(resource, name, None)
        if number is None:
            return f"unknown limit {name}"
        _, own_hard = resource.getrlimit(number)
        if own_hard != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or hard > own_hard):
            return f"limit {name} above the launcher's"
        if soft != resource.RLIM_INFINITY and hard != resource.RLIM_INFINITY and soft > hard:
            return f"limit {name} malformed"
    if int(str(request["nice"])) < os.getpriority(os.PRIO_PROCESS, 0):
        return "nice value below the launcher's"
    if not set(request["affinity"]) <= os.sched_getaffinity(0):  # type: ignore[call-overload]
        return "CPUs the launcher may not use"
    return None


def apply_context(request: dict[str, object]) -> None:
    """In the forked child: take on the asking process's context (see :func:`context`)."""
    import resource

    os.umask(int(str(request["umask"])))
    limits = request["rlimits"]
    assert isinstance(limits, dict)
    for name, (soft, hard) in limits.items():
        resource.setrlimit(getattr(resource, name), (soft, hard))
    nice = int(str(request["nice"])) - os.getpriority(os.PRIO_PROCESS, 0)
    if nice:
        os.nice(nice)
    affinity = request["affinity"]
    assert isinstance(affinity, list)
    os.sched_setaffinity(0, affinity)  # a subset of the launcher's (see _refusal)
    ignored = set(request["ignored"])  # type: ignore[call-overload]
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        with contextlib.suppress(ValueError, OSError):
            if sig in ignored:
                signal.signal(sig, signal.SIG_IGN)
            elif sig == signal.SIGINT:
                signal.signal(sig, signal.default_int_handler)
            elif sig not in (signal.SIGPIPE, signal.SIGXFSZ):  # a fresh interpreter ignores those two
                signal.signal(sig, signal.SIG_DFL)
    os.chdir(str(request["cwd"]))
    env = request["env"]
    assert isinstance(env, dict)
    os.environ.clear()
    os.environ.update(env)


def _child(request: dict[str, object], argv: bytes) -> int:
    """The forked child: claim the workload, detach, and fork the guard (which never returns).

    Exit status 0: the guard runs (or the workload was started already); 1: nothing was
    claimed, the backend starts it the cold way.
    """
    os.setsid()  # a session of its own, as ``start_new_session`` gives the cold path
    claim = os.path.join(str(request["run_dir"]), "logs", "supervisor.log")
    try:
        fd = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
    except FileExistsError:
        return 0  # started already (the backend's cold path won the claim)
    except OSError:
        return 1
    try:
        os.fchmod(fd, 0o600)
        pid = os.fork()
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(claim)
        return 1
    if pid > 0:  # the guard is nobody's child: the launcher reaps this one at once
        return 0
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.closerange(3, 1 << 16)
    try:
        procs.set_argv(argv)
        apply_context(request)
    except BaseException:
        import traceback

        traceback.print_exc()  # into supervisor.log; the record stays pending until START_GRACE
        sys.stderr.flush()
        os._exit(1)
    from . import guard
    from .supervisor import _supervise

    os._exit(guard.run(str(request["db"]), str(request["id"]), _supervise))


def _serve_one(conn: socket.socket, room: int, own: str) -> bool:
    """Answer one request (fork its guard); False when this launcher should leave (stale)."""
    conn.settimeout(10.0)
    request = daemons.receive(conn)
    argv = procs.command_line(
        (str(request["python"]), "-m", "workbench.runtime.supervisor", str(request["db"]), str(request["id"]))
    )
    reason = _refusal(request, argv, room, own)
    if reason is not None:
        daemons.send(conn, {"ok": False, "reason": reason})
        return reason != "stale"
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            conn.close()
            code = _child(request, argv)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)  # it forks the guard and leaves at once
    started = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    daemons.send(conn, {"ok": True} if started else {"ok": False, "reason": "could not claim the workload"})
    return True


def serve(path: str, idle: float = IDLE_SECONDS) -> int:
    """Listen on ``path`` until idle for ``idle`` seconds or stale; the exit status."""
    own = stamp()
    start, end = procs.argv_area()
    room = end - start

    def preload() -> None:
        # a pod's runner, forked from its supervisor (forked.py), seals its results with these (OpenSSL)
        import hashlib  # noqa: F401
        import hmac  # noqa: F401

        from . import cell, guard, supervise, supervisor  # noqa: F401 - loaded once, for every fork

    return daemons.serve(
        path, idle, lambda conn: _serve_one(conn, room, own), lambda: stamp() == own, preload
    )


def main(argv: list[str]) -> int:
    path, idle = argv[0], float(argv[1])  # then the padding
    if os.fork() > 0:  # detach: whoever started it reaps this parent at once
        os._exit(0)
    os.setsid()
    # the command line as ps shows it: without the padding (which stays, as NULs, for the children)
    procs.set_argv(procs.command_line((sys.executable, "-m", LAUNCHER_MODULE, path)))
    return serve(path, idle)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
