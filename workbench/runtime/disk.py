"""A full disk, told apart from other failures, and a little room kept for the final record.

When a workload fills the disk that holds its run directory (by default the same disk as
the store), its own writes fail with ENOSPC and so may the supervisor's final write to the
store. The supervisor therefore sets aside a small reserve file at start and deletes it once
the workload's processes are gone, so the record can still say what happened. Only ``os``:
the guard imports this too.
"""

from __future__ import annotations

import errno
import os

#: Bytes set aside per running workload for the final write of its record (a few SQLite pages).
RESERVE_BYTES = 256 * 1024
#: A file system with less free than this (and less than 2 % of its size) counts as full.
FULL_BELOW = 1024 * 1024
_FULL_WORDS = ("disk is full", "no space left on device", "enospc", "disk quota exceeded")


def free_bytes(path: str) -> int | None:
    """Bytes this user may still write on the file system holding ``path`` (root uses the reserve)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    blocks = st.f_bfree if os.geteuid() == 0 else st.f_bavail
    return blocks * st.f_frsize


def is_full(path: str) -> bool:
    """Whether the file system holding ``path`` has (next to) no room left."""
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    free = free_bytes(path) or 0
    return free < min(FULL_BELOW, st.f_blocks * st.f_frsize // 50)


def is_full_error(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it) is a write that failed for want of space."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if getattr(exc, "sqlite_errorcode", None) == 13:  # SQLITE_FULL
            return True
        if getattr(exc, "reason", None) == "full":  # the store's own StoreError
            return True
        if names_full(str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def names_full(text: str) -> bool:
    """Whether a message (a log's last line, say) reports a full disk."""
    return any(word in text.lower() for word in _FULL_WORDS)


def full_message(path: str, what: str) -> str:
    """The record's message when the disk holding the run directory ``path`` filled up."""
    return (
        f"the disk holding {path} is full (ENOSPC): {what}; free space on it "
        "(`workbench rm` finished runs, or move WORKBENCH_HOME to a larger disk) and run it again"
    )


class Reserve:
    """A file that keeps ``size`` bytes of a file system for later; ``release`` gives them back."""

    def __init__(self, path: str, size: int = RESERVE_BYTES) -> None:
        self.path: str | None = path
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.posix_fallocate(fd, 0, size)
            finally:
                os.close(fd)
        except OSError:  # already full, or a file system without fallocate: no reserve
            self.release()

    def release(self) -> bool:
        """Delete the reserve; True when there was one."""
        path, self.path = self.path, None
        if path is None:
            return False
        try:
            os.unlink(path)
        except OSError:
            return False
        return True
