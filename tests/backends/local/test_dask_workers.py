"""How a local Dask cluster's workers start: forked from a warm forkserver, or as the Dask
config says. Real clusters, real workers."""

from __future__ import annotations

from typing import Any

import pytest

from workbench.runtime import procs
from workbench.service import Service


def probe() -> tuple[int, str | None, int, str | None]:
    """Run on each worker: its parent, hash seed, a string's hash, and its workload marker."""
    import os

    return (
        os.getppid(),
        os.environ.get("PYTHONHASHSEED"),
        hash("workbench"),
        os.environ.get("WORKBENCH_RUN_DIR"),
    )


def workers(
    service: Service, name: str
) -> tuple[list[tuple[int, str | None, int, str | None]], dict[int, bytes]]:
    """What :func:`probe` found on each worker of a new 2-worker cluster, and the command line
    of each worker's parent (read while the cluster runs)."""
    workload = service.launch({"kind": "dask", "workers": 2, "name": name})
    client: Any = service.dask_client(workload.id)
    try:
        found = list(client.run(probe).values())
        return found, {parent: procs.cmdline(parent) for parent, _, _, _ in found}
    finally:
        client.close()
        service.cancel(workload.id)


def test_workers_fork_from_one_warm_server_and_hash_alike(service: Service) -> None:
    found, parents = workers(service, "forked")
    record = service.get("forked")
    assert len(found) == 2
    assert {seed for _, seed, _, _ in found} == {"6640"}  # Dask's worker seed: every worker hashes alike
    assert len({value for _, _, value, _ in found}) == 1
    assert {marker for _, _, _, marker in found} == {record.run_dir}  # the workload's processes, as before
    ((server, cmdline),) = parents.items()  # one server forked both
    assert server != record.pid
    assert b"multiprocessing.forkserver" in cmdline


def test_a_dask_config_that_names_a_method_is_followed(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD", "spawn")
    found, parents = workers(service, "spawned")
    record = service.get("spawned")
    assert len(found) == 2
    assert set(parents) == {record.pid}  # each spawned by its nanny, in the cluster's own process
    assert len({value for _, _, value, _ in found}) == 1
