"""The shared SQLite store."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.errors import Conflict, NotFound
from workbench.store import Store, Workload


def record(name: str, status: str = "pending", gpus: list[str] | None = None) -> Workload:
    return Workload(
        id=name,
        kind="pod",
        backend="local",
        status=status,
        spec={"kind": "pod"},
        run_dir=f"/runs/{name}",
        created=time.time(),
        gpus=gpus or [],
    )


def test_wal_mode_and_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path / "wb.db")
    mode = sqlite3.connect(tmp_path / "wb.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    written = store.insert(record("pod-a", gpus=["1"]))
    assert store.get("pod-a") == written
    assert store.gpus_in_use() == {"1": "pod-a"}


def test_final_status_is_written_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "wb.db")
    store.insert(record("pod-a", status="running"))
    assert store.finish("pod-a", "cancelled", exit_code=-15, message="cancelled")
    assert not store.finish("pod-a", "succeeded", exit_code=0, message="")
    assert store.get("pod-a").status == "cancelled"
    assert store.gpus_in_use() == {}


def test_merging_into_info_keeps_what_another_writer_put_there(tmp_path: Path) -> None:
    """A cluster's runtime publishing its address must not drop the MLflow run the launch recorded."""
    store = Store(tmp_path / "wb.db")
    store.insert(record("dask-a", status="running"))
    assert store.merge_info("dask-a", "mlflow", {"run_id": "r1"})
    assert store.merge_info("dask-a", None, {"address": "tcp://127.0.0.1:1", "workers_live": 2})
    assert store.merge_info("dask-a", None, {"workers_live": 3})
    assert store.get("dask-a").info == {
        "mlflow": {"run_id": "r1"},
        "address": "tcp://127.0.0.1:1",
        "workers_live": 3,
    }
    assert not store.merge_info("missing", None, {"x": 1})


def test_find_by_prefix(tmp_path: Path) -> None:
    store = Store(tmp_path / "wb.db")
    store.insert(record("pod-abc123"))
    store.insert(record("pod-abd456"))
    assert store.find("pod-abc").id == "pod-abc123"
    with pytest.raises(Conflict, match="matches several workloads"):
        store.find("pod-ab")
    with pytest.raises(NotFound, match="no workload named 'zzz'"):
        store.find("zzz")
    with pytest.raises(NotFound):
        store.find("pod_")  # '_' is not a wildcard


def test_failed_amend_writes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "wb.db")

    def refuse(_: Store) -> Workload:
        raise Conflict("no")

    with pytest.raises(Conflict):
        store.insert(record("pod-a"), amend=refuse)
    assert store.list() == []


def test_many_processes_write_concurrently(tmp_path: Path) -> None:
    db = tmp_path / "wb.db"
    Store(db)
    writer = (
        "import sys, time\n"
        "from workbench.store import Store, Workload\n"
        "s = Store(sys.argv[1])\n"
        "for i in range(25):\n"
        "    s.insert(Workload(id=f'{sys.argv[2]}-{i}', kind='pod', backend='local', status='pending',\n"
        "                      spec={}, run_dir='/x', created=time.time()))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", writer, str(db), f"w{n}"]) for n in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    assert len(Store(db).list()) == 100


def test_store_made_before_the_info_column_is_upgraded(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    old = sqlite3.connect(db)
    old.execute(
        "CREATE TABLE workloads (id TEXT PRIMARY KEY, kind TEXT NOT NULL, backend TEXT NOT NULL, "
        "status TEXT NOT NULL, spec TEXT NOT NULL, owner TEXT NOT NULL DEFAULT '', session TEXT, "
        "run_dir TEXT NOT NULL, gpus TEXT NOT NULL DEFAULT '[]', created REAL NOT NULL, started REAL, "
        "ended REAL, pid INTEGER, supervisor_pid INTEGER, exit_code INTEGER, "
        "message TEXT NOT NULL DEFAULT '', "
        "cancel_requested INTEGER NOT NULL DEFAULT 0)"
    )
    old.execute(
        "INSERT INTO workloads (id, kind, backend, status, spec, run_dir, created) "
        "VALUES ('pod-old', 'pod', 'local', 'succeeded', '{}', '/x', 1.0)"
    )
    old.commit()
    old.close()
    store = Store(db)
    assert store.get("pod-old").info == {}
    store.update("pod-old", info={"address": "tcp://127.0.0.1:1"})
    assert store.get("pod-old").info == {"address": "tcp://127.0.0.1:1"}


def test_processes_opening_a_fresh_store_at_once(tmp_path: Path) -> None:
    opener = "import sys\nfrom workbench.store import Store\nStore(sys.argv[1]).list()\n"
    for round_ in range(3):
        db = tmp_path / f"fresh-{round_}.db"
        procs = [
            subprocess.Popen([sys.executable, "-c", opener, str(db)], stderr=subprocess.PIPE)
            for _ in range(6)
        ]
        results = [(p.wait(timeout=60), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
        assert [code for code, _ in results] == [0] * 6, results
        assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_local_record_is_copied_into_its_run_directory(tmp_path: Path) -> None:
    store = Store(tmp_path / "wb.db")
    run_dir = tmp_path / "runs" / "pod-a"
    run_dir.mkdir(parents=True)
    store.insert(Workload(**{**record("pod-a").to_dict(), "run_dir": str(run_dir)}))
    store.update("pod-a", status="running", pid=42, info={"k": "v"})
    copy = json.loads((run_dir / "record.json").read_text())
    assert copy == {**store.get("pod-a").to_dict(), "spec": {"kind": "pod"}}
    assert (copy["status"], copy["pid"], copy["info"]) == ("running", 42, {"k": "v"})
    assert store.finish("pod-a", "succeeded", exit_code=0, message="")
    assert json.loads((run_dir / "record.json").read_text())["status"] == "succeeded"
    assert stat.S_IMODE((run_dir / "record.json").stat().st_mode) == 0o600


def test_a_store_follows_its_file_when_it_is_deleted_and_made_new(tmp_path: Path) -> None:
    db = tmp_path / "wb.db"
    first = Store(db)
    assert first.created and first.claim_rebuild() and not first.claim_rebuild()
    first.insert(record("pod-old"))
    assert not Store(db).created
    db.unlink()
    second = Store(db)
    assert second.created and second.list() == []
    second.insert(record("pod-new"))
    assert [w.id for w in first.list()] == ["pod-new"]  # the old process switched to the new file
    assert second.claim_rebuild() and not first.claim_rebuild()


def test_a_store_file_deleted_under_a_writer_is_made_new_by_it(tmp_path: Path) -> None:
    db = tmp_path / "wb.db"
    store = Store(db)
    store.insert(record("pod-a"))
    db.unlink()
    assert not store.update("pod-a", status="running")  # not in the new file
    assert db.exists() and Store(db).claim_rebuild()  # marked for a rebuild from the run directories
