"""The store's file: a connection per thread, creating the file, following it when it is
deleted or replaced, what a SQLite or OS fault means in one line, and the copy of each local
record kept in its run directory.

Only the standard library and the core (the supervisor imports the store).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

from .errors import StoreError
from .private import create_private, private_dir, write_private

#: The run directory's copy of its store record, rewritten on every change of the record,
#: so a store that was lost can be rebuilt truthfully (``workbench doctor --repair``).
RECORD_FILE = "record.json"
#: Free space below which an I/O error on the store is taken for a full disk.
_NEARLY_FULL = 256 * 1024

# SQLite's primary result codes (https://sqlite.org/rescode.html)
_PERM, _BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 3, 5, 6, 8, 10, 11, 13, 14, 26


def read_only_location(path: Path) -> bool:
    """Whether the folder of ``path`` (or the file) cannot be written."""
    folder = path.parent
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return True
    except OSError:
        return False
    if not os.access(folder, os.W_OK):
        return True
    return path.exists() and not os.access(path, os.W_OK)


def disk_full(path: Path) -> bool:
    """Whether the file system holding ``path`` has (nearly) no space or no inodes left."""
    try:
        info = os.statvfs(path.parent)
    except OSError:
        return False
    free = info.f_bfree if os.geteuid() == 0 else info.f_bavail
    return free * info.f_frsize < _NEARLY_FULL or (info.f_files > 0 and info.f_favail == 0)


def corrupt(path: Path, detail: str) -> StoreError:
    return StoreError(
        f"the workbench store {path} is corrupt ({detail})",
        reason="corrupt",
        value=str(path),
        hint="run `workbench doctor --repair`: it moves the file aside and rebuilds the records "
        "from the run directories",
    )


def full(path: Path) -> StoreError:
    return StoreError(
        f"cannot write the workbench store {path}: the disk is full (ENOSPC)",
        reason="full",
        value=str(path),
        hint=f"free space on that disk (`df -h {path.parent}`), then retry",
    )


def read_only(path: Path, detail: str) -> StoreError:
    return StoreError(
        f"the workbench store {path} is read-only ({detail}): nothing can be launched or changed",
        reason="read-only",
        value=str(path),
        hint=f"make {path.parent} writable, or set WORKBENCH_HOME to a writable folder",
    )


def fault(exc: sqlite3.Error, path: Path) -> StoreError | None:
    """The one-line error for a fault of the store's file; None for anything else (a bug)."""
    if type(exc) not in (sqlite3.DatabaseError, sqlite3.OperationalError):
        return None  # IntegrityError, ProgrammingError…: our mistakes, never hidden
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return None
    primary = code & 0xFF
    io_error = primary in (_IOERR, _CANTOPEN)
    if primary in (_CORRUPT, _NOTADB):
        return corrupt(path, str(exc))
    if primary == _FULL or (io_error and disk_full(path)):
        return full(path)
    if primary in (_READONLY, _PERM) or (io_error and read_only_location(path)):
        return read_only(path, str(exc))
    if primary in (_BUSY, _LOCKED):
        return StoreError(
            f"the workbench store {path} stayed locked by another process ({exc})",
            reason="locked",
            value=str(path),
            hint=f"retry; `fuser {path}` shows the processes that have it open",
        )
    if io_error:
        return StoreError(
            f"cannot use the workbench store {path}: {exc}",
            reason="unavailable",
            value=str(path),
            hint="check the disk and the folder, then run `workbench doctor`",
        )
    return None


def os_fault(exc: OSError, path: Path) -> StoreError:
    """The one-line error for an OS error while opening or creating the store."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return full(path)
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return read_only(path, exc.strerror or str(exc))
    where = f" ({exc.filename})" if exc.filename else ""
    return StoreError(
        f"cannot open the workbench store {path}: {exc.strerror or exc}{where}",
        reason="unavailable",
        value=str(path),
        hint="set WORKBENCH_HOME to a folder you can write",
    )


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock between processes on ``folder`` (held while a store file is created)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def remove_leftovers(path: Path) -> None:
    """Drop the ``-wal``/``-shm`` files of a store file that is gone: a new file must not take
    up the old one's journal (processes that still have the old file open keep theirs)."""
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


def write_record(data: dict[str, Any]) -> None:
    """Copy a local record into its run directory (best effort: the store stays the truth)."""
    if data.get("backend") != "local":
        return
    run_dir = Path(data["run_dir"])
    if not run_dir.is_dir():
        return
    temporary = run_dir / f".{RECORD_FILE}.{os.getpid()}.{threading.get_ident()}"
    try:
        write_private(temporary, json.dumps(data, sort_keys=True))
        os.replace(temporary, run_dir / RECORD_FILE)
    except OSError:  # a full disk: the workload's own log says so; the record is in the store
        with contextlib.suppress(OSError):
            temporary.unlink()


def read_record(run_dir: Path) -> dict[str, Any] | None:
    """The record copied into a run directory, if it holds a readable one."""
    try:
        data = json.loads((run_dir / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


_F = TypeVar("_F", bound=Callable[..., Any])


def guarded(method: _F) -> _F:
    """Turn a fault of the store's file into one :class:`StoreError` line; bugs pass through.

    For methods of objects with a ``path``.
    """

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            error = fault(exc, self.path)
            if error is None:
                raise
            raise error from exc

    return cast(_F, call)


class StoreFile:
    """The SQLite file at ``path``, with one connection per thread.

    Args:
        path: the database file; its folder is created when missing.
        prepare: sets up a connection's database (schema, journal mode); told whether the
            file was created just now.

    Attributes:
        read_only: the location cannot be written: the records can be read, never changed.
        created: this object created the file (it was missing).
        on_replaced: called after a thread found the file deleted or replaced and switched to
            the one now at ``path`` (made new when it was missing).
    """

    def __init__(self, path: Path, prepare: Callable[[sqlite3.Connection, bool], None]) -> None:
        self.path = path
        self.read_only = False
        self.on_replaced: Callable[[], None] | None = None
        self._prepare = prepare
        self._local = threading.local()
        self.created = self._open()

    def _connect(self) -> sqlite3.Connection:
        target: str | Path = self.path
        if self.read_only:
            target = f"file:{urllib.parse.quote(str(self.path))}?mode=ro&immutable=1"
        db = sqlite3.connect(
            target, uri=self.read_only, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        info = os.stat(self.path)
        self._local.db, self._local.file = db, (info.st_ino, info.st_dev)
        return db

    @guarded
    def _open(self) -> bool:
        """Connect the calling thread, creating the file when it is missing; True if created."""
        try:
            private_dir(self.path.parent)
            if self._create():
                return True
            create_private(self.path)  # SQLite gives its -wal and -shm files the database's mode
        except OSError as exc:
            if not (self.path.is_file() and read_only_location(self.path)):
                raise os_fault(exc, self.path) from exc
        try:
            if not read_only_location(self.path):
                self._prepare(self._connect(), False)
                return False
        except sqlite3.DatabaseError as exc:
            self._drop()  # a later call tries afresh
            error = fault(exc, self.path)
            if error is None:
                raise
            if error.reason != "read-only":
                raise error from exc
        # a read-only location: the records can still be read when no journal is pending
        wal = Path(f"{self.path}-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise read_only(self.path, f"its journal {wal.name} cannot be replayed there")
        self.read_only = True
        self._connect().execute("SELECT count(*) FROM sqlite_master").fetchone()
        return False

    def _create(self) -> bool:
        """Create and prepare the file when it is missing (under a lock between processes)."""
        if self.path.exists() and self.path.stat().st_size > 0:
            return False
        with folder_lock(self.path.parent):
            if self.path.exists() and self.path.stat().st_size > 0:
                return False
            if not self.path.exists():
                remove_leftovers(self.path)
            create_private(self.path)
            db = self._connect()
            try:
                self._prepare(db, True)
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except BaseException:
                self._drop()
                raise
            return True

    def _drop(self) -> None:
        """Close and forget the calling thread's connection."""
        db = getattr(self._local, "db", None)
        self._local.db = None
        if db is not None:
            db.close()

    @property
    def db(self) -> sqlite3.Connection:
        """The calling thread's connection, to the file now at ``path``."""
        local = self._local
        db: sqlite3.Connection | None = getattr(local, "db", None)
        if db is not None and (self.read_only or db.in_transaction):
            return db
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            info = None
        if db is not None and info is not None and (info.st_ino, info.st_dev) == local.file:
            return db
        return self._reopen(db)

    def _reopen(self, old: sqlite3.Connection | None) -> sqlite3.Connection:
        """Connect a new thread, or switch a thread whose file was deleted or replaced (moved
        aside, restored) to the one now at ``path``. SQLite keeps the old file's journal to it."""
        if old is not None:
            if not self.path.parent.is_dir():  # the whole home is gone: nothing to switch to
                return old
            self._drop()
        created = self._open()
        if (created or old is not None) and self.on_replaced is not None:
            self.on_replaced()
        db: sqlite3.Connection = self._local.db
        return db

    def close(self) -> None:
        """Close the calling thread's connection; other threads' close when their thread ends."""
        self._drop()
        self._local = threading.local()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate (write-locked) transaction; rolled back on any error."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise
