"""How a local Dask cluster's workers start: forked from a warm server (a fork of the cluster
process, or a fresh interpreter where a fork cannot hold), or as the Dask config says. Real
clusters, real workers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from workbench.runtime import dask_workers, procs
from workbench.service import Service

from .test_orphans import ppid


def probe() -> dict[str, Any]:
    """Run on each worker: its parent, environment, a string's hash and a draw of numpy's
    global generator."""
    import os

    import numpy as np

    names = ("PYTHONHASHSEED", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_")
    return {
        "parent": os.getppid(),
        "env": {name: os.environ.get(name) for name in (*names, dask_workers.DEFAULTED)},
        "hash": hash("workbench"),
        "draw": float(np.random.random()),
        "marker": os.environ.get("WORKBENCH_RUN_DIR"),
    }


@dataclass
class Started:
    found: list[dict[str, Any]]  # what probe() saw on each worker
    parents: dict[int, tuple[bytes, int]]  # each worker's parent: its command line and parent, then
    cluster: bytes  # the cluster process's command line
    record: Any
    left: list[int]  # the workers' parents still alive once the cluster was cancelled


def workers(service: Service, name: str, **fields: Any) -> Started:
    """Start a 2-worker cluster, probe its workers, cancel it."""
    workload = service.launch({"kind": "dask", "workers": 2, "name": name, **fields})
    client: Any = service.dask_client(workload.id)
    record = service.get(workload.id)
    try:
        found = list(client.run(probe).values())
        parents = {item["parent"]: (procs.cmdline(item["parent"]), ppid(item["parent"])) for item in found}
        cluster = procs.cmdline(record.pid)
    finally:
        client.close()
        service.cancel(workload.id)
    service.wait(workload.id, timeout=60)
    return Started(found, parents, cluster, record, [p for p in parents if procs.is_alive(p)])


def test_workers_fork_from_a_fork_of_the_cluster_process_and_hash_alike(service: Service) -> None:
    started = workers(service, "forked")
    assert len(started.found) == 2
    envs = [item["env"] for item in started.found]
    assert (
        envs
        == [
            {
                "PYTHONHASHSEED": "6640",  # Dask's worker seed: every worker hashes alike
                "OMP_NUM_THREADS": "1",  # distributed's pre-spawn-environ
                "OPENBLAS_NUM_THREADS": "1",
                "MALLOC_TRIM_THRESHOLD_": "65536",
                dask_workers.DEFAULTED: None,  # the backend's note to the cluster process stays there
            }
        ]
        * 2
    )
    assert len({item["hash"] for item in started.found}) == 1
    assert len({item["draw"] for item in started.found}) == 2  # numpy's generator seeded per worker
    assert {item["marker"] for item in started.found} == {started.record.run_dir}  # the workload's
    ((server, (cmdline, parent)),) = started.parents.items()  # one server forked both
    assert server != started.record.pid
    assert cmdline == started.cluster  # a fork of the cluster process, not a fresh interpreter
    assert parent == started.record.pid
    assert started.left == []  # the server leaves with the cluster


def test_more_than_one_blas_thread_starts_a_fresh_server(service: Service) -> None:
    # numpy's BLAS starts a thread as it loads: a fork would not keep it, so no fork
    started = workers(service, "blas", env={"OPENBLAS_NUM_THREADS": "2"})
    assert len(started.found) == 2
    assert {item["env"]["OPENBLAS_NUM_THREADS"] for item in started.found} == {"2"}
    assert {item["env"]["PYTHONHASHSEED"] for item in started.found} == {"6640"}
    assert len({item["hash"] for item in started.found}) == 1
    ((cmdline, parent),) = started.parents.values()
    assert b"multiprocessing.forkserver" in cmdline
    assert parent == started.record.pid
    assert started.left == []


def test_a_dask_config_that_names_a_method_is_followed(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD", "spawn")
    started = workers(service, "spawned")
    assert len(started.found) == 2
    assert set(started.parents) == {started.record.pid}  # each spawned by its nanny, in the cluster
    assert len({item["hash"] for item in started.found}) == 1


def test_a_cluster_adds_only_what_its_environment_lacks() -> None:
    added = dask_workers.start_environ({"OMP_NUM_THREADS": "4", "PYTHONHASHSEED": "7"})
    assert added == {
        "MALLOC_TRIM_THRESHOLD_": "65536",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        dask_workers.DEFAULTED: "MALLOC_TRIM_THRESHOLD_,MKL_NUM_THREADS,OPENBLAS_NUM_THREADS",
    }
    everything = {name: "1" for name in ("MALLOC_TRIM_THRESHOLD_", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    assert dask_workers.start_environ({**everything, "OMP_NUM_THREADS": "2", "PYTHONHASHSEED": "3"}) == {}
