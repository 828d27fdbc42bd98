"""Resource usage in the store: bounded history, summaries, deletion, old store files; the
service's report and the describe block for backends with and without a source."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from workbench import render
from workbench.service import Service
from workbench.store import Store, Workload
from workbench.usage_store import SUMMARY_FIELDS


def record(name: str, backend: str = "local", status: str = "running") -> Workload:
    return Workload(
        id=name,
        kind="pod",
        backend=backend,
        status=status,
        spec={"kind": "pod"},
        run_dir=f"/nonexistent/runs/{name}",
        created=time.time(),
    )


def sample(t: float, cpu: float = 50.0, rss: int = 1000, **extra: Any) -> dict[str, Any]:
    return {"t": t, "cpu_seconds": t / 2, "cpu_percent": cpu, "rss_bytes": rss, "threads": 2, **extra}


def test_history_is_bounded_to_the_seconds_kept(tmp_path: Path) -> None:
    store = Store(tmp_path / "wb.db")
    store.insert(record("a"))
    store.insert(record("b"))
    for t in range(100):
        store.record_usage("a", sample(1000.0 + t), keep=30)
    store.record_usage("b", sample(1000.0), keep=30)
    kept = store.usage("a")
    assert [s["t"] for s in kept] == [1000.0 + t for t in range(69, 100)]  # oldest first
    assert [s["t"] for s in store.usage("a", since=1097.0)] == [1098.0, 1099.0]
    assert len(store.usage("b")) == 1  # another workload's samples are its own
    assert store.usage_summaries(["a"])["a"]["samples"] == 100  # the summary counts every sample
    assert set(kept[0]) == {"t", "cpu_seconds", "cpu_percent", "rss_bytes", "threads", "gpu_util",
                            "gpu_memory_bytes"}  # fmt: skip


def test_summary_has_last_values_peaks_and_averages(tmp_path: Path) -> None:
    store = Store(tmp_path / "wb.db")
    store.insert(record("a"))
    store.record_usage("a", sample(10.0, cpu=10.0, rss=100))
    store.record_usage("a", sample(11.0, cpu=50.0, rss=300, gpu_util=20.0, gpu_memory_bytes=5000))
    store.record_usage("a", sample(12.0, cpu=30.0, rss=200, gpu_util=10.0, gpu_memory_bytes=None))
    summary = store.usage_summaries()["a"]
    assert set(summary) == set(SUMMARY_FIELDS)
    assert summary["samples"] == 3
    assert (summary["first_t"], summary["last_t"]) == (10.0, 12.0)
    assert (summary["cpu_percent"], summary["peak_cpu_percent"]) == (30.0, 50.0)
    assert summary["avg_cpu_percent"] == pytest.approx(30.0)
    assert (summary["rss_bytes"], summary["peak_rss_bytes"], summary["avg_rss_bytes"]) == (200, 300, 200)
    assert (summary["cpu_seconds"], summary["threads"]) == (6.0, 2)
    assert (summary["gpu_util"], summary["peak_gpu_util"]) == (10.0, 20.0)
    assert (summary["gpu_memory_bytes"], summary["peak_gpu_memory_bytes"]) == (None, 5000)


def test_without_gpus_the_gpu_figures_stay_null(tmp_path: Path) -> None:
    store = Store(tmp_path / "wb.db")
    store.insert(record("a"))
    store.record_usage("a", sample(1.0))
    store.record_usage("a", sample(2.0, gpu_util=None, gpu_memory_bytes=None))
    summary = store.usage_summaries(["a"])["a"]
    assert [
        summary[k] for k in ("gpu_util", "peak_gpu_util", "gpu_memory_bytes", "peak_gpu_memory_bytes")
    ] == [None] * 4


def test_summaries_of_some_many_or_no_ids(tmp_path: Path) -> None:
    store = Store(tmp_path / "wb.db")
    for name in ("a", "b", "c"):
        store.insert(record(name))
        store.record_usage(name, sample(1.0))
    assert set(store.usage_summaries()) == {"a", "b", "c"}
    assert set(store.usage_summaries(["a", "c", "unknown"])) == {"a", "c"}
    assert store.usage_summaries([]) == {}
    many = [f"x{i}" for i in range(2000)] + ["b"]  # past SQLite's variable limit: one query still
    assert set(store.usage_summaries(iter(many))) == {"b"}


def test_usage_goes_with_the_workload(tmp_path: Path) -> None:
    store = Store(tmp_path / "wb.db")
    store.insert(record("a", status="succeeded"))
    store.insert(record("b"))
    store.record_usage("a", sample(1.0))
    store.record_usage("b", sample(1.0))
    store.delete("a")
    assert store.usage("a") == [] and "a" not in store.usage_summaries()
    assert store.usage("b") and "b" in store.usage_summaries()
    # samples left under a name (a store rebuilt around them) never reach a new workload of that name
    store.record_usage("gone", sample(1.0))
    store.insert(record("gone"))
    assert store.usage("gone") == [] and store.usage_summaries(["gone"]) == {}


def test_an_old_store_file_gains_the_tables(tmp_path: Path) -> None:
    path = tmp_path / "wb.db"
    old = sqlite3.connect(path)  # a store of the release before: no usage tables
    old.executescript(
        "CREATE TABLE workloads (id TEXT PRIMARY KEY, kind TEXT NOT NULL, backend TEXT NOT NULL, "
        "status TEXT NOT NULL, spec TEXT NOT NULL, owner TEXT NOT NULL DEFAULT '', session TEXT, "
        "run_dir TEXT NOT NULL, gpus TEXT NOT NULL DEFAULT '[]', created REAL NOT NULL, started REAL, "
        "ended REAL, pid INTEGER, supervisor_pid INTEGER, exit_code INTEGER, "
        "message TEXT NOT NULL DEFAULT '', cancel_requested INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE result_keys (id TEXT PRIMARY KEY, key TEXT NOT NULL);"
        "INSERT INTO workloads (id, kind, backend, status, spec, run_dir, created) "
        "VALUES ('old', 'pod', 'local', 'succeeded', '{}', '/nonexistent/old', 1.0);"
    )
    old.close()
    store = Store(path)
    assert store.usage("old") == [] and store.usage_summaries() == {}
    store.record_usage("old", sample(1.0))
    assert store.usage_summaries()["old"]["samples"] == 1
    tables = {row[0] for row in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert {"usage", "usage_summary", "usage_workload_t"} <= tables


def test_service_report_and_describe_block(service: Service) -> None:
    store = service.store
    store.insert(record("local-one", status="succeeded"))
    for i, (cpu, rss) in enumerate([(90.0, 300 * 2**20), (110.0, 100 * 2**20)]):
        store.record_usage("local-one", sample(100.0 + 0.5 * i, cpu=cpu, rss=rss))
    report = service.usage("local")  # a unique prefix, like every other command
    assert report["source"] == "psutil" and report["note"] is None
    assert report["summary"]["peak_rss_bytes"] == 300 * 2**20
    assert [s["cpu_percent"] for s in report["history"]] == [90.0, 110.0]

    described = yaml.safe_load(render.describe(service.get("local-one"), report))
    block = described["usage"]
    assert block["cpu"] == "peak 110%, avg 100% (100% = one core)"
    assert block["memory"] == "peak 300Mi, avg 200Mi"
    assert (block["samples"], block["period"], block["source"]) == (2, "0.5s", "psutil")
    assert "gpu" not in block
    as_json = yaml.safe_load(render.describe(service.get("local-one"), report, "json"))
    assert as_json["usage"]["samples"] == 2 and as_json["id"] == "local-one"

    store.insert(record("quiet", status="succeeded"))
    assert "no resource samples" in service.usage("quiet")["note"]


def test_a_finished_workload_without_samples_says_so(service: Service) -> None:
    service.store.insert(record("remote", backend="kubernetes", status="succeeded"))
    report = service.usage("remote")  # ended before anything read its PodMetrics: no call is made
    note = "no PodMetrics were read while it ran"
    assert report == {"summary": None, "history": [], "source": "metrics.k8s.io", "note": note}
    block = yaml.safe_load(render.describe(service.store.get("remote"), report))["usage"]
    assert block == {"source": "metrics.k8s.io", "note": note}
