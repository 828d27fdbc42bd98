"""The state store every process shares: SQLite in WAL mode under ``WORKBENCH_HOME``.

The kernel, the CLI, the Jupyter server and each workload's supervisor open their own
connection. Writes that must not race (a new record and its GPU grant, a status change)
happen in one ``BEGIN IMMEDIATE`` transaction, and status changes are conditional on the
current status so a late writer cannot overwrite a final state.

One :class:`Store` may be shared by threads (each thread gets a connection of its own). A
fault of the file (corrupt, read-only, a full disk) is one :class:`~workbench.errors.StoreError`
line; a file deleted or replaced under a running process is followed to the new one; and every
change of a local record is copied into its run directory, so a lost store can be rebuilt
truthfully (:mod:`workbench.repair`).

This module imports only the standard library: the supervisor uses it and must stay small.
"""

from __future__ import annotations

import builtins
import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import store_file as files
from .errors import Conflict, NotFound
from .store_file import StoreFile, guarded
from .usage_store import SCHEMA as USAGE_SCHEMA
from .usage_store import UsageStore

PENDING = "pending"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
ACTIVE = (PENDING, RUNNING)
FINAL = (SUCCEEDED, FAILED, CANCELLED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS workloads (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    backend TEXT NOT NULL,
    status TEXT NOT NULL,
    spec TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT '',
    session TEXT,
    run_dir TEXT NOT NULL,
    gpus TEXT NOT NULL DEFAULT '[]',
    created REAL NOT NULL,
    started REAL,
    ended REAL,
    pid INTEGER,
    supervisor_pid INTEGER,
    exit_code INTEGER,
    message TEXT NOT NULL DEFAULT '',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    info TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS workloads_status ON workloads(status);
CREATE INDEX IF NOT EXISTS workloads_created ON workloads(created);
CREATE TABLE IF NOT EXISTS result_keys (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
_COLUMNS = [
    "id", "kind", "backend", "status", "spec", "owner", "session", "run_dir", "gpus", "created",
    "started", "ended", "pid", "supervisor_pid", "exit_code", "message", "cancel_requested", "info",
]  # fmt: skip
_BACKEND, _RUN_DIR = _COLUMNS.index("backend"), _COLUMNS.index("run_dir")
#: Columns added after the first release, with their definitions, for stores made before.
_ADDED_COLUMNS = {"info": "TEXT NOT NULL DEFAULT '{}'"}


@dataclass(frozen=True)
class Workload:
    """One launched thing, as recorded."""

    id: str
    kind: str
    backend: str
    status: str
    spec: dict[str, Any]
    run_dir: str
    created: float
    owner: str = ""
    session: str | None = None
    gpus: list[str] = field(default_factory=list)
    started: float | None = None
    ended: float | None = None
    pid: int | None = None
    supervisor_pid: int | None = None
    exit_code: int | None = None
    message: str = ""
    cancel_requested: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.id

    @property
    def done(self) -> bool:
        return self.status in FINAL

    def to_dict(self) -> dict[str, Any]:
        # shallow (dataclasses.asdict deep-copies every spec: a third of a 1,000-row listing)
        return {name: getattr(self, name) for name in _COLUMNS}

    @classmethod
    def _from_row(cls, row: Sequence[Any]) -> Workload:
        data = dict(zip(_COLUMNS, row, strict=True))
        data["spec"] = json.loads(data["spec"])
        data["gpus"] = json.loads(data["gpus"])
        data["info"] = json.loads(data["info"])
        data["cancel_requested"] = bool(data["cancel_requested"])
        return cls(**data)


class Store(UsageStore):
    """The shared SQLite store; one object may be shared by threads (each gets a connection).

    Resource usage (samples and summaries) comes from :class:`~workbench.usage_store.UsageStore`.

    Args:
        path: the database file; its folder is created when missing.

    Attributes:
        read_only: the location cannot be written: records can be read, never changed.
        created: the file was missing and was made new here.
        on_replaced: called (with the store) after the file was found deleted or replaced and
            this process switched to the one now at ``path``.

    Raises:
        StoreError: the file is corrupt, read-only where it must be created, on a full disk.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.on_replaced: Callable[[Store], object] | None = None
        self._run_dirs: dict[str, str] = {}  # id → run directory, of records this store changed
        self._file = StoreFile(self.path, self._prepare)
        self._file.on_replaced = lambda: self.on_replaced(self) if self.on_replaced else None

    @property
    def read_only(self) -> bool:
        return self._file.read_only

    @property
    def created(self) -> bool:
        return self._file.created

    @property
    def _db(self) -> sqlite3.Connection:
        return self._file.db

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """An immediate (write-locked) transaction; rolled back on any error."""
        return self._file.transaction()

    def close(self) -> None:
        self._file.close()

    @staticmethod
    def _prepare(db: sqlite3.Connection, created: bool) -> None:
        # Switching a new database to WAL needs a lock that SQLite does not wait for: when two
        # processes open a fresh store at once, one of them retries instead of failing.
        for attempt in range(100):
            try:
                if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(_SCHEMA + USAGE_SCHEMA)  # what is missing is made: old files too
                present = {row[1] for row in db.execute("PRAGMA table_info(workloads)")}
                for column, definition in _ADDED_COLUMNS.items():
                    if column not in present:
                        db.execute(f"ALTER TABLE workloads ADD COLUMN {column} {definition}")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 99:
                    raise
                time.sleep(0.02 + 0.001 * attempt)
        if created:  # its run directories may hold workloads it does not know: see claim_rebuild
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('unscanned', ?)", (str(time.time()),)
            )

    @guarded
    def claim_rebuild(self) -> bool:
        """True once, for the first caller, after this file was created new (its run directories
        may hold workloads it does not know)."""
        if self.read_only:
            return False
        if self._db.execute("SELECT 1 FROM meta WHERE key = 'unscanned'").fetchone() is None:
            return False
        with self.transaction() as db:
            return db.execute("DELETE FROM meta WHERE key = 'unscanned'").rowcount == 1

    # -- reads -----------------------------------------------------------------------------
    @guarded
    def get(self, workload_id: str) -> Workload:
        row = self._db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM workloads WHERE id = ?", (workload_id,)
        ).fetchone()
        if row is None:
            raise NotFound(
                f"no workload named {workload_id!r}",
                value=workload_id,
                hint="run `workbench ls` to see the workloads",
            )
        return Workload._from_row(row)

    @guarded
    def find(self, prefix: str) -> Workload:
        """A workload by exact name, else by a unique name prefix."""
        try:
            return self.get(prefix)
        except NotFound:
            pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            rows = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM workloads WHERE id LIKE ? ESCAPE '\\' LIMIT 3",
                (pattern,),
            ).fetchall()
            if len(rows) == 1:
                return Workload._from_row(rows[0])
            if len(rows) > 1:
                names = ", ".join(r[0] for r in rows)
                raise Conflict(
                    f"{prefix!r} matches several workloads ({names}…)",
                    value=prefix,
                    hint="give more of the name",
                ) from None
            raise

    @guarded
    def list(
        self,
        *,
        kind: str | None = None,
        status: Sequence[str] | None = None,
        backend: str | None = None,
        session: str | None = None,
    ) -> list[Workload]:
        """Workloads, newest first, filtered by the given fields."""
        where, args = [], []
        for column, value in (("kind", kind), ("backend", backend), ("session", session)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if status:
            where.append(f"status IN ({', '.join('?' for _ in status)})")
            args.extend(status)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM workloads {clause} ORDER BY created DESC", args
        ).fetchall()
        return [Workload._from_row(r) for r in rows]

    @guarded
    def ids(self) -> set[str]:
        """The names of every recorded workload."""
        return {row[0] for row in self._db.execute("SELECT id FROM workloads")}

    @guarded
    def check(self) -> str | None:
        """What SQLite finds wrong with the file (``PRAGMA quick_check``); None when nothing."""
        problems = [row[0] for row in self._db.execute("PRAGMA quick_check")]
        return None if problems == ["ok"] else "; ".join(problems[:3])

    @guarded
    def backends(self) -> set[str]:
        """The backends that have workloads in the store."""
        return {row[0] for row in self._db.execute("SELECT DISTINCT backend FROM workloads")}

    @guarded
    def gpus_in_use(self, backend: str = "local") -> dict[str, str]:
        """GPU index → the active workload holding it."""
        marks = ", ".join("?" * len(ACTIVE))
        rows = self._db.execute(
            f"SELECT id, gpus FROM workloads WHERE backend = ? AND status IN ({marks})",
            (backend, *ACTIVE),
        ).fetchall()
        return {gpu: wid for wid, gpus in rows for gpu in json.loads(gpus)}

    # -- writes ----------------------------------------------------------------------------
    @guarded
    def insert(
        self,
        workload: Workload,
        *,
        amend: Callable[[Store], Workload] | None = None,
        results_key: str | None = None,
    ) -> Workload:
        """Insert a new record atomically and return what was written.

        Args:
            workload: the record; its id must be free.
            amend: called inside the same write transaction before the insert, returning the
                record to write (e.g. with a GPU grant); it may raise to abort, writing nothing.
            results_key: the launch's key for sealed ``--get`` results (kept apart from the
                record, which every listing returns).
        """
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM workloads WHERE id = ?", (workload.id,)).fetchone():
                raise Conflict(
                    f"a workload named {workload.id!r} already exists",
                    value=workload.id,
                    hint=f"choose another --name, or `workbench rm {workload.id}` first",
                )
            if amend is not None:
                workload = amend(self)
            data = workload.to_dict()
            data["spec"] = json.dumps(data["spec"], sort_keys=True)
            data["gpus"] = json.dumps(data["gpus"])
            data["info"] = json.dumps(data["info"])
            data["cancel_requested"] = int(data["cancel_requested"])
            db.execute(
                f"INSERT INTO workloads ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})",
                [data[c] for c in _COLUMNS],
            )
            db.execute("DELETE FROM result_keys WHERE id = ?", (workload.id,))
            self.forget_usage(db, workload.id)  # left by an earlier workload of this name
            if results_key is not None:
                db.execute("INSERT INTO result_keys (id, key) VALUES (?, ?)", (workload.id, results_key))
        return workload

    @guarded
    def results_key(self, workload_id: str) -> bytes | None:
        """The key that seals a workload's ``--get`` results; None when it has none."""
        row = self._db.execute("SELECT key FROM result_keys WHERE id = ?", (workload_id,)).fetchone()
        return bytes.fromhex(row[0]) if row else None

    @guarded
    def update(self, workload_id: str, *, only_if: Sequence[str] | None = None, **fields: Any) -> bool:
        """Set fields; with ``only_if``, only while the status is one of those. True if written."""
        values = {k: json.dumps(v) if k in ("gpus", "info") else v for k, v in fields.items()}
        sets = ", ".join(f"{k} = ?" for k in values)
        sql = f"UPDATE workloads SET {sets} WHERE id = ?"
        args: list[Any] = [*values.values(), workload_id]
        if only_if:
            sql += f" AND status IN ({', '.join('?' for _ in only_if)})"
            args.extend(only_if)
        with self.transaction() as db:
            rows = db.execute(f"{sql} RETURNING {', '.join(_COLUMNS)}", args).fetchall()
            gone = (
                not rows
                and db.execute("SELECT 1 FROM workloads WHERE id = ?", (workload_id,)).fetchone() is None
            )
        if rows:
            self._mirror(rows[0])
        elif gone:
            self._mirror_unrecorded(workload_id, only_if, fields)
        return bool(rows)

    def _mirror(self, row: Sequence[Any]) -> None:
        """Copy a changed local record into its run directory (see ``store_file.RECORD_FILE``)."""
        if row[_BACKEND] != "local":
            return
        self._run_dirs[row[0]] = row[_RUN_DIR]
        if os.path.isdir(row[_RUN_DIR]):
            files.write_record(Workload._from_row(row).to_dict())

    def _mirror_unrecorded(
        self, workload_id: str, only_if: Sequence[str] | None, fields: dict[str, Any]
    ) -> None:
        """A change to a record this store no longer holds (its file was deleted and made new
        meanwhile) still reaches the run directory's copy, so a rebuild tells the truth."""
        run_dir = self._run_dirs.get(workload_id)
        record = files.read_record(Path(run_dir)) if run_dir else None
        if record is not None and (not only_if or record.get("status") in only_if):
            files.write_record({**record, **fields})

    @guarded
    def merge_info(
        self,
        workload_id: str,
        key: str | None,
        values: dict[str, Any],
        *,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> bool:
        """Merge ``values`` into the mapping ``info[key]`` (``info`` itself for None) in one write
        transaction, only if ``when(mapping)`` holds (a claim no other process can also win).
        True if written."""
        with self.transaction() as db:
            row = db.execute("SELECT info FROM workloads WHERE id = ?", (workload_id,)).fetchone()
            info = json.loads(row[0]) if row else {}
            found = info if key is None else info.get(key)
            current: dict[str, Any] = found if isinstance(found, dict) else {}
            if row is None or (when is not None and not when(current)):
                return False
            if key is None:
                info = {**current, **values}
            else:
                info[key] = {**current, **values}
            sql = f"UPDATE workloads SET info = ? WHERE id = ? RETURNING {', '.join(_COLUMNS)}"
            rows = db.execute(sql, (json.dumps(info), workload_id)).fetchall()
        for changed in rows:
            self._mirror(changed)
        return True

    def finish(self, workload_id: str, status: str, *, exit_code: int | None, message: str) -> bool:
        """Record a final status once; a workload already final keeps its first outcome."""
        return self.update(
            workload_id,
            only_if=ACTIVE,
            status=status,
            exit_code=exit_code,
            message=message,
            ended=time.time(),
        )

    @guarded
    def regrant_gpus(
        self, workload_id: str, choose: Callable[[dict[str, str]], builtins.list[str]]
    ) -> builtins.list[str]:
        """Change a workload's GPUs atomically: ``choose(in_use)`` gets the GPUs other workloads hold."""
        with self.transaction() as db:
            in_use = {gpu: wid for gpu, wid in self.gpus_in_use().items() if wid != workload_id}
            gpus = choose(in_use)
            rows = db.execute(
                f"UPDATE workloads SET gpus = ? WHERE id = ? RETURNING {', '.join(_COLUMNS)}",
                (json.dumps(gpus), workload_id),
            ).fetchall()
        for row in rows:
            self._mirror(row)
        return gpus

    @guarded
    def delete(self, workload_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM result_keys WHERE id = ?", (workload_id,))
            self.forget_usage(db, workload_id)
            db.execute("DELETE FROM workloads WHERE id = ?", (workload_id,))
