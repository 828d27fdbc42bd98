"""Starting a local workload's supervision: through the warm launcher, else the cold way.

The warm way asks this user's launcher (:mod:`workbench.runtime.launcher`, a fork server with
the guard and the supervisor already imported) over its Unix socket; the cold way starts
``python -m workbench.runtime.supervisor DB ID`` in a session of its own, as before. Both
make the same processes with the same command line, context and outcome records.

The launcher is used when it is there and current; when it is absent, it is started in the
background for the next launch, and this one goes the cold way. Anything unexpected (a
stale or dead launcher, a refusal, a lost answer) falls back to the cold way, and exactly one
of the two starts the workload: whoever creates ``logs/supervisor.log`` first (``O_EXCL``).

``WORKBENCH_LAUNCHER=0`` (or ``off``, ``no``, ``false``) turns the launcher off. A process
that runs inside a local workload (its environment has ``WORKBENCH_RUN_DIR``) always uses the
cold way, so what it launches stays inside that workload's process tree and cgroup.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from ...runtime import daemons, launcher, procs

#: Set to ``0``/``off``/``no``/``false`` to never use (or start) the launcher.
SWITCH_ENV = "WORKBENCH_LAUNCHER"
SUPERVISOR_LOG = ("logs", "supervisor.log")


def enabled() -> bool:
    value = os.environ.get(SWITCH_ENV, "").strip().lower()
    return value not in ("0", "off", "no", "false") and procs.MARKER_ENV not in os.environ


def socket_path() -> Path | None:
    """Where the launcher of this installation and interpreter listens (None: no usable folder)."""
    return daemons.socket_path(f"launcher-{launcher.stamp()}.sock")


def start_supervisor(db_path: str, workload_id: str, run_dir: Path) -> str:
    """Start the workload's guard and supervisor; ``"warm"`` or ``"cold"``, the way it went."""
    if enabled() and _warm(db_path, workload_id, run_dir):
        return "warm"
    _cold(db_path, workload_id, run_dir)
    return "cold"


def _claim(run_dir: Path) -> int | None:
    """Create ``logs/supervisor.log``; its descriptor, or None when it exists (started already)."""
    path = run_dir.joinpath(*SUPERVISOR_LOG)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
    except FileExistsError:
        return None
    os.fchmod(fd, 0o600)
    return fd


def _cold(db_path: str, workload_id: str, run_dir: Path) -> None:
    fd = _claim(run_dir)
    if fd is None:  # the launcher's child claimed it: it runs
        return
    try:
        subprocess.Popen(
            [sys.executable, "-m", "workbench.runtime.supervisor", db_path, workload_id],
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(fd)


def _warm(db_path: str, workload_id: str, run_dir: Path) -> bool:
    """True when the launcher took the workload; False: start it the cold way."""
    path = socket_path()
    if path is None:
        return False
    try:
        request = {
            **launcher.context(),
            "stamp": launcher.stamp(),
            "python": sys.executable,
            "db": db_path,
            "id": workload_id,
            "run_dir": str(run_dir),
        }
    except OSError:  # the working directory is gone: only the cold path inherits it
        return False
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(10.0)
        try:
            sock.connect(str(path))
        except OSError:  # absent, or dead (its socket left behind): start one for next time
            _spawn(path)
            return False
        try:
            daemons.send(sock, request)
            reply = daemons.receive(sock)
        except (OSError, ValueError):
            return False  # no answer: the cold path's claim tells whether the launcher started it
        return reply.get("ok") is True
    finally:
        sock.close()


def _spawn(path: Path) -> None:
    """Start the launcher in the background (it detaches); never twice in a row from here."""
    daemons.spawn(path, launcher.LAUNCHER_MODULE, str(launcher.IDLE_SECONDS), "-" * launcher.ARGV_ROOM)
