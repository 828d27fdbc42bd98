"""Files and folders only their owner can read, whatever the umask.

The state under ``WORKBENCH_HOME`` holds what workloads run (``launch.json`` has their argv
and environment), their payloads, logs and outputs: folders are made 0700 and files 0600
explicitly, never left to the process's umask. Only the standard library (the supervisor
uses it).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
#: The umask the supervisor gives a workload, so what it writes is private too.
WORKLOAD_UMASK = 0o077


def private_dir(path: Path) -> Path:
    """Make ``path`` (and any missing parent) a folder only its owner can enter.

    Folders created here are 0700; an existing one that we own is tightened to 0700.
    """
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made by another process meanwhile
            folder.mkdir(mode=DIR_MODE)
        os.chmod(folder, DIR_MODE)
    info = path.stat()
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, DIR_MODE)
    return path


def create_private(path: Path) -> None:
    """Create ``path`` empty (0600) when it does not exist; make it 0600 when it does.

    An existing file is never opened here: closing any descriptor of a file drops every POSIX
    lock this process holds on it, and SQLite's locks on the store are such locks.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        if stat.S_IMODE(path.stat().st_mode) != FILE_MODE:
            with contextlib.suppress(PermissionError):  # not ours: leave it as its owner made it
                os.chmod(path, FILE_MODE)
        return
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def write_private(path: Path, data: bytes | str) -> None:
    """Write ``path`` (0600), replacing what was there."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), FILE_MODE)
        fh.write(data.encode() if isinstance(data, str) else data)


def make_private(root: Path) -> None:
    """Folders under ``root`` (and ``root``) 0700, files 0600; symlinks are left alone."""
    os.chmod(root, DIR_MODE)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, DIR_MODE)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, FILE_MODE)


def exposed(path: Path) -> int | None:
    """The mode of ``path`` when its group or others may read or write it, else None."""
    mode = stat.S_IMODE(path.stat().st_mode)
    return mode if mode & 0o066 else None
