"""This user's long-lived helpers (the launcher, the agent): their folder, their start, their loop.

Both are per-user servers on a Unix socket in a private folder, started in the background by
the first process that finds them absent, and gone again after an idle period or as soon as
the code they loaded has changed (the socket's name carries a stamp of that code, so a changed
installation is served by a new one). Only peers of this user (``SO_PEERCRED``) are served;
the socket is 0600 in a 0700 folder, whatever the umask. Requests and answers are
length-prefixed JSON messages (:class:`Channel`).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import struct
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

_RESPAWN_AFTER = 10.0  # seconds before this process starts another helper that did not come up
_spawned: dict[str, float] = {}
#: Bytes of ``sun_path`` a socket's path may use (it holds 108).
SOCKET_ROOM = 100
_HEADER = struct.Struct("!I")
_BLOB = struct.Struct("!Q")
_MAX_MESSAGE = 16 * 2**20


class Channel:
    """Length-prefixed JSON messages both ways, and blobs of bytes. It reads no further than
    the message it returns, and what arrived before an interrupt waits in its buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode()
        self.sock.sendall(_HEADER.pack(len(data)) + data)

    def send_blob(self, blob: bytes) -> None:
        self.sock.sendall(_BLOB.pack(len(blob)))
        self.sock.sendall(blob)

    def _fill(self, size: int) -> None:
        while len(self.buffer) < size:
            chunk = self.sock.recv(size - len(self.buffer))
            if not chunk:
                raise ConnectionError("the peer closed the connection")
            self.buffer += chunk

    def _take(self, start: int, size: int) -> bytes:
        self._fill(start + size)
        data = bytes(self.buffer[start : start + size])
        del self.buffer[: start + size]
        return data

    def receive(self) -> dict[str, Any]:
        """One message; raises OSError (ConnectionError) on a short read or an oversized one."""
        self._fill(_HEADER.size)
        (size,) = _HEADER.unpack_from(self.buffer)
        if size > _MAX_MESSAGE:
            raise ConnectionError(f"message of {size} bytes refused")
        message = json.loads(self._take(_HEADER.size, size))
        if not isinstance(message, dict):
            raise ConnectionError("not a message")
        return message

    def receive_blob(self) -> bytes:
        self._fill(_BLOB.size)
        (size,) = _BLOB.unpack_from(self.buffer)
        return self._take(_BLOB.size, size)


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    Channel(sock).send(message)


def receive(sock: socket.socket) -> dict[str, Any]:
    """One message (see :meth:`Channel.receive`)."""
    return Channel(sock).receive()


def runtime_dir() -> Path | None:
    """This user's private folder for the helpers' sockets; None when it cannot be trusted.

    ``$XDG_RUNTIME_DIR/workbench`` where that is set, else ``<tmp>/workbench-<uid>``; made
    0700, and used only when it is a real folder owned by this user and closed to others.
    """
    import tempfile

    runtime = os.environ.get("XDG_RUNTIME_DIR")
    folder = (
        Path(runtime) / "workbench" if runtime else Path(tempfile.gettempdir()) / f"workbench-{os.getuid()}"
    )
    try:
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
        info = os.lstat(folder)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return None
    if stat.S_IMODE(info.st_mode) & 0o077:
        try:
            os.chmod(folder, 0o700)
        except OSError:
            return None
    return folder


def socket_path(name: str) -> Path | None:
    """``name`` in :func:`runtime_dir` (None: no usable folder, or a path too long for a socket)."""
    folder = runtime_dir()
    if folder is None:
        return None
    path = folder / name
    return path if len(str(path)) <= SOCKET_ROOM else None


def spawn(path: Path, module: str, *extra: str) -> None:
    """Start ``python -m module PATH *extra`` in the background (it detaches); never twice in a
    row from here. Its output goes to the socket's ``.log`` beside it."""
    import subprocess  # the launcher, which never spawns, stays without it

    key = str(path)
    if time.monotonic() - _spawned.get(key, -_RESPAWN_AFTER) < _RESPAWN_AFTER:
        return
    _spawned[key] = time.monotonic()
    # its own environment marks nothing: each request brings the asking process's environment
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    try:
        fd = os.open(path.with_suffix(".log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:
        return
    try:
        subprocess.Popen(
            [sys.executable, "-m", module, key, *extra],
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            cwd="/",
            env=env,
        )
    except OSError:
        pass
    finally:
        os.close(fd)


def same_user(conn: socket.socket) -> bool:
    """Whether the peer of ``conn`` is a process of this user and group."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, gid = struct.unpack("3i", creds)
    return bool(uid == os.getuid() and gid == os.getgid())


def serve(
    path: str,
    idle: float,
    handle: Callable[[socket.socket], bool],
    current: Callable[[], bool],
    preload: Callable[[], None] = lambda: None,
) -> int:
    """Listen on ``path`` and ``handle`` each connection of this user; the exit status.

    ``handle`` answers False when this helper should leave; it also leaves after ``idle``
    seconds without a connection, or once ``current()`` says its code changed. Exactly one
    helper serves a path (a lock beside the socket); ``preload`` runs once that one is known.
    """
    import fcntl

    lock = os.open(path + ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(lock)
        return 0  # another one serves this socket
    preload()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_mask = os.umask(0o177)  # the socket is 0600 from the start, whatever the umask
    try:
        listener.bind(path)
    finally:
        os.umask(old_mask)
    os.chmod(path, 0o600)
    bound = os.stat(path).st_ino
    listener.listen(64)
    tick = min(idle, 5.0)
    listener.settimeout(tick)
    quiet = 0.0
    try:
        while quiet < idle:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                quiet += tick
                if not current() or not _ours(path, bound):
                    return 0
                continue
            quiet = 0.0
            with conn:
                if not same_user(conn):
                    continue  # another user's process: closed without a word
                try:
                    keep = handle(conn)
                except (OSError, ValueError, KeyError, TypeError):
                    keep = True  # a broken request: the asking side falls back
            if not keep:
                return 0
        return 0
    finally:
        if _ours(path, bound):
            with contextlib.suppress(OSError):
                os.unlink(path)
        listener.close()
        _tidy(path)
        os.close(lock)


def _tidy(path: str) -> None:
    """Remove the lock file and an empty log (a later helper of this stamp makes new ones)."""
    with contextlib.suppress(OSError):
        os.unlink(path + ".lock")
    log = path.removesuffix(".sock") + ".log"
    with contextlib.suppress(OSError):
        if os.stat(log).st_size == 0:
            os.unlink(log)


def _ours(path: str, inode: int) -> bool:
    """Whether ``path`` is still this helper's socket (not removed or replaced)."""
    try:
        return os.stat(path).st_ino == inode
    except OSError:
        return False
