"""Resource usage in the store: a bounded history of samples per workload, and a summary.

The local supervisor samples its workload's process tree (:mod:`workbench.runtime.usage`)
and records each sample with :meth:`UsageStore.record_usage`: one transaction inserts it,
drops that workload's samples older than the history kept, and updates the workload's
summary (sample count, last values, peaks, averages), so ``describe``, ``workbench top``, the
REST records and the widgets read one row per workload however long it ran. Both tables are
emptied of a workload when its record is deleted (see :class:`workbench.store.Store`).

Averages are plain means over the samples (each sample is one reading over one period).
Standard library only: the supervisor imports the store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from .store_file import guarded

#: Seconds of samples kept per workload unless told otherwise (setting ``usage_history``).
DEFAULT_HISTORY = 3600.0
#: The fields of one sample, as :meth:`UsageStore.usage` returns them (oldest first).
SAMPLE_FIELDS = ("t", "cpu_seconds", "cpu_percent", "rss_bytes", "threads", "gpu_util", "gpu_memory_bytes")
#: The fields of a summary, as :meth:`UsageStore.usage_summaries` returns them.
SUMMARY_FIELDS = (
    "samples", "first_t", "last_t", "cpu_seconds", "cpu_percent", "peak_cpu_percent", "avg_cpu_percent",
    "rss_bytes", "peak_rss_bytes", "avg_rss_bytes", "threads", "gpu_util", "peak_gpu_util",
    "gpu_memory_bytes", "peak_gpu_memory_bytes",
)  # fmt: skip
#: Beyond this many ids, the summaries are read whole and filtered here (SQLite's variable limit).
_MAX_IDS = 500

SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    workload_id TEXT NOT NULL,
    t REAL NOT NULL,
    cpu_seconds REAL NOT NULL,
    cpu_percent REAL NOT NULL,
    rss_bytes INTEGER NOT NULL,
    threads INTEGER NOT NULL,
    gpu_util REAL NULL,
    gpu_memory_bytes INTEGER NULL
);
CREATE INDEX IF NOT EXISTS usage_workload_t ON usage(workload_id, t);
CREATE TABLE IF NOT EXISTS usage_summary (
    workload_id TEXT PRIMARY KEY,
    samples INTEGER NOT NULL,
    first_t REAL NOT NULL,
    last_t REAL NOT NULL,
    cpu_seconds REAL NOT NULL,
    cpu_percent REAL NOT NULL,
    peak_cpu_percent REAL NOT NULL,
    avg_cpu_percent REAL NOT NULL,
    rss_bytes INTEGER NOT NULL,
    peak_rss_bytes INTEGER NOT NULL,
    avg_rss_bytes REAL NOT NULL,
    threads INTEGER NOT NULL,
    gpu_util REAL NULL,
    peak_gpu_util REAL NULL,
    gpu_memory_bytes INTEGER NULL,
    peak_gpu_memory_bytes INTEGER NULL
);
"""

# In an upsert's SET, every column names the row as it was: ``samples`` is the old count.
_UPSERT = """
INSERT INTO usage_summary (workload_id, samples, first_t, last_t, cpu_seconds, cpu_percent,
    peak_cpu_percent, avg_cpu_percent, rss_bytes, peak_rss_bytes, avg_rss_bytes, threads, gpu_util,
    peak_gpu_util, gpu_memory_bytes, peak_gpu_memory_bytes)
VALUES (:id, 1, :t, :t, :cpu_seconds, :cpu_percent, :cpu_percent, :cpu_percent, :rss_bytes, :rss_bytes,
    :rss_bytes, :threads, :gpu_util, :gpu_util, :gpu_memory_bytes, :gpu_memory_bytes)
ON CONFLICT(workload_id) DO UPDATE SET
    samples = samples + 1,
    first_t = min(first_t, excluded.first_t),
    last_t = max(last_t, excluded.last_t),
    cpu_seconds = excluded.cpu_seconds,
    cpu_percent = excluded.cpu_percent,
    peak_cpu_percent = max(peak_cpu_percent, excluded.cpu_percent),
    avg_cpu_percent = avg_cpu_percent + (excluded.cpu_percent - avg_cpu_percent) / (samples + 1),
    rss_bytes = excluded.rss_bytes,
    peak_rss_bytes = max(peak_rss_bytes, excluded.rss_bytes),
    avg_rss_bytes = avg_rss_bytes + (excluded.rss_bytes - avg_rss_bytes) / (samples + 1),
    threads = excluded.threads,
    gpu_util = excluded.gpu_util,
    peak_gpu_util = coalesce(max(peak_gpu_util, excluded.gpu_util), peak_gpu_util, excluded.gpu_util),
    gpu_memory_bytes = excluded.gpu_memory_bytes,
    peak_gpu_memory_bytes = coalesce(max(peak_gpu_memory_bytes, excluded.gpu_memory_bytes),
                                     peak_gpu_memory_bytes, excluded.gpu_memory_bytes)
"""


def _missing_table(exc: sqlite3.OperationalError) -> bool:
    """A store opened read-only that was made before these tables existed."""
    return "no such table" in str(exc)


def _summary(row: tuple[Any, ...]) -> dict[str, Any]:
    data = dict(zip(SUMMARY_FIELDS, row[1:], strict=True))
    data["avg_rss_bytes"] = round(data["avg_rss_bytes"])
    return data


class UsageStore:
    """The usage half of :class:`workbench.store.Store` (which supplies the members below)."""

    path: Path

    @property
    def _db(self) -> sqlite3.Connection:
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    @guarded
    def record_usage(
        self, workload_id: str, sample: Mapping[str, Any], *, keep: float = DEFAULT_HISTORY
    ) -> None:
        """Add one sample (the :data:`SAMPLE_FIELDS`; the GPU ones may be missing or None), drop
        the workload's samples older than ``keep`` seconds before it, and update its summary."""
        values = {name: sample.get(name) for name in SAMPLE_FIELDS}
        values["id"] = workload_id
        with self.transaction() as db:
            db.execute(
                f"INSERT INTO usage (workload_id, {', '.join(SAMPLE_FIELDS)}) "
                f"VALUES (:id, {', '.join(':' + name for name in SAMPLE_FIELDS)})",
                values,
            )
            db.execute("DELETE FROM usage WHERE workload_id = ? AND t < ?", (workload_id, sample["t"] - keep))
            db.execute(_UPSERT, values)

    @guarded
    def usage(self, workload_id: str, since: float | None = None) -> list[dict[str, Any]]:
        """The workload's samples kept (taken after ``since``, when given), oldest first."""
        sql = f"SELECT {', '.join(SAMPLE_FIELDS)} FROM usage WHERE workload_id = ?"
        args: list[Any] = [workload_id]
        if since is not None:
            sql += " AND t > ?"
            args.append(since)
        try:
            rows = self._db.execute(sql + " ORDER BY t", args).fetchall()
        except sqlite3.OperationalError as exc:
            if _missing_table(exc):
                return []
            raise
        return [dict(zip(SAMPLE_FIELDS, row, strict=True)) for row in rows]

    @guarded
    def usage_summaries(self, ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """Workload id → its usage summary (the :data:`SUMMARY_FIELDS`), for those of ``ids``
        (default: every workload) that have one; one query whatever the number."""
        wanted = None if ids is None else set(ids)
        sql = f"SELECT workload_id, {', '.join(SUMMARY_FIELDS)} FROM usage_summary"
        args: list[str] = []
        if wanted is not None and len(wanted) <= _MAX_IDS:
            if not wanted:
                return {}
            args = sorted(wanted)
            sql += f" WHERE workload_id IN ({', '.join('?' for _ in args)})"
        try:
            rows = self._db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if _missing_table(exc):
                return {}
            raise
        return {row[0]: _summary(row) for row in rows if wanted is None or row[0] in wanted}

    @staticmethod
    def forget_usage(db: sqlite3.Connection, workload_id: str) -> None:
        """Inside a write transaction: drop the workload's samples and summary."""
        db.execute("DELETE FROM usage WHERE workload_id = ?", (workload_id,))
        db.execute("DELETE FROM usage_summary WHERE workload_id = ?", (workload_id,))
