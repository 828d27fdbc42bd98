"""Dask clusters on the local backend: real schedulers, nannies and workers."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from workbench.config import load_settings
from workbench.errors import NotFound, SpecError
from workbench.service import Service

from ...conftest import assert_nothing_created


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def n_workers(client) -> int:  # type: ignore[no-untyped-def]
    return len(client.scheduler_info(n_workers=-1)["workers"])


@pytest.fixture
def cluster(service: Service) -> Iterator[tuple[Service, str, object]]:
    workload = service.launch({"kind": "dask", "workers": 2, "name": "local-dask"})
    client = service.dask_client(workload.id)
    yield service, workload.id, client
    client.close()  # type: ignore[attr-defined]


def test_two_workers_compute_a_dask_array(cluster: tuple[Service, str, object]) -> None:
    import dask.array as da
    import numpy as np

    service, name, client = cluster
    assert n_workers(client) == 2
    x = da.arange(1_000_000, chunks=100_000)
    assert client.compute((x * 2).sum()).result() == 2 * np.arange(1_000_000).sum()  # type: ignore[attr-defined]
    record = service.get(name)
    assert record.status == "running"
    assert record.info["address"].startswith("tcp://127.0.0.1:")
    assert record.info["dashboard"].startswith("http://127.0.0.1:")


def test_scale_up_and_down(cluster: tuple[Service, str, object]) -> None:
    service, name, client = cluster
    service.scale(name, 3)
    eventually(lambda: n_workers(client) == 3)
    eventually(lambda: service.get(name).info.get("workers_live") == 3)  # the record follows
    service.scale(name, 1)
    eventually(lambda: n_workers(client) == 1)
    assert service.get(name).info["requested_workers"] == 1
    eventually(lambda: service.get(name).info.get("workers_live") == 1)
    assert service.get(name).info["address"].startswith("tcp://127.0.0.1:")  # merged, not replaced


@pytest.fixture
def quick_adapt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dask's own config, inherited by the cluster process: decide every 200 ms, after one look."""
    monkeypatch.setenv("DASK_DISTRIBUTED__ADAPTIVE__INTERVAL", "200ms")
    monkeypatch.setenv("DASK_DISTRIBUTED__ADAPTIVE__WAIT_COUNT", "1")


def test_adapt_scales_an_idle_cluster_down_to_its_minimum(
    quick_adapt: None, cluster: tuple[Service, str, object]
) -> None:
    service, name, client = cluster
    service.scale(name, 3)
    eventually(lambda: n_workers(client) == 3)
    service.adapt(name, 1, 3)
    eventually(lambda: n_workers(client) == 1, timeout=60)
    assert service.get(name).info["adapt"] == [1, 3]


def test_a_killed_worker_is_replaced_and_the_work_finishes(cluster: tuple[Service, str, object]) -> None:
    service, name, client = cluster

    def slow(i: int) -> int:
        time.sleep(0.2)
        return i

    futures = client.map(slow, range(40))  # type: ignore[attr-defined]
    pids = client.run(os.getpid)  # type: ignore[attr-defined]
    os.kill(next(iter(pids.values())), signal.SIGKILL)
    try:
        total = sum(client.gather(futures))  # type: ignore[attr-defined]
    except Exception as exc:  # once in CI the client lost the scheduler: keep what the cluster said
        log = "".join(service.logs(name))[-4000:]
        raise AssertionError(f"{exc!r}; record: {service.get(name)!r}; cluster log tail:\n{log}") from exc
    assert total == sum(range(40))
    eventually(lambda: n_workers(client) == 2)
    assert set(client.run(os.getpid).values()) != set(pids.values())  # type: ignore[attr-defined]


def test_idle_timeout_shuts_the_cluster_down(service: Service) -> None:
    workload = service.launch({"kind": "dask", "workers": 1, "idle_timeout": "2s"})
    service.dask_address(workload.id)
    final = service.wait(workload.id, timeout=60)
    assert final.status == "succeeded"
    assert final.message == "shut down after being idle for 2.0s"


def test_cancel_stops_scheduler_and_workers(cluster: tuple[Service, str, object]) -> None:
    from workbench.runtime import procs

    service, name, client = cluster
    assert service.get(name).status == "running"
    pids = list(client.run(os.getpid).values())  # type: ignore[attr-defined]
    final = service.cancel(name)
    assert final.status == "cancelled"
    eventually(lambda: not any(procs.is_alive(pid) for pid in pids))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"workers": 0}, "invalid --workers (workers): 0 must be greater than or equal to 1"),
        ({"adapt": "5:2"}, "adapt 5:2 has MIN above MAX"),
        ({"resources": {"memory": "lots"}}, "'lots' is not a quantity"),
        ({"threads": -1}, "invalid --threads (threads): -1 must be greater than or equal to 1"),
    ],
)
def test_bad_input_starts_nothing(service: Service, fields: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError) as info:
        service.launch({"kind": "dask", **fields})
    assert message in str(info.value)
    assert_nothing_created(service)


def test_unknown_cluster_and_wrong_kind(service: Service) -> None:
    with pytest.raises(NotFound, match="no workload named 'nope'"):
        service.scale("nope", 2)
    pod = service.launch({"kind": "pod", "code": "pass"})
    with pytest.raises(SpecError, match="scaling applies to Dask clusters"):
        service.scale(pod.id, 2)
    with pytest.raises(SpecError, match="adapt 3:1 has MIN above MAX"):
        cluster = service.launch({"kind": "dask", "workers": 1})
        service.adapt(cluster.id, 3, 1)


def test_workers_get_their_own_gpus(monkeypatch: pytest.MonkeyPatch, wb_home: Path) -> None:
    monkeypatch.setenv("WORKBENCH_LOCAL_GPUS", "0,1,2,3")
    service = Service(load_settings())
    try:
        workload = service.launch({"kind": "dask", "workers": 2, "resources": {"gpus": 1}})
        assert workload.gpus == ["0", "1"]
        client = service.dask_client(workload.id)
        seen = client.run(lambda: os.environ["CUDA_VISIBLE_DEVICES"])
        assert sorted(seen.values()) == ["0", "1"]
        service.scale(workload.id, 3)
        eventually(lambda: n_workers(client) == 3)
        assert sorted(client.run(lambda: os.environ["CUDA_VISIBLE_DEVICES"]).values()) == ["0", "1", "2"]
        assert service.get(workload.id).gpus == ["0", "1", "2"]
        with pytest.raises(SpecError, match="asks for 2 GPUs but this host has 1"):
            service.scale(workload.id, 5)
        client.close()
    finally:
        for w in service.store.list(status=["pending", "running"]):
            service.cancel(w.id)
        service.close()


def test_cli_dask_lifecycle(wb_home: Path) -> None:
    import subprocess
    import sys

    cli = [sys.executable, "-m", "workbench.cli", "dask"]
    up = subprocess.run([*cli, "up", "--workers", "1", "--name", "cli-dask"], capture_output=True, text=True)
    assert up.returncode == 0, up.stderr
    name, address = up.stdout.split()[:2]
    assert name == "cli-dask" and address.startswith("tcp://")
    assert (
        subprocess.run([*cli, "address", "cli-dask"], capture_output=True, text=True).stdout.strip()
        == address
    )
    listing = subprocess.run([*cli, "ls"], capture_output=True, text=True).stdout.splitlines()
    assert listing[0].split()[:5] == ["NAME", "BACKEND", "STATUS", "AGE", "WORKERS"]
    assert listing[1].split()[:3] == ["cli-dask", "local", "running"]
    bad = subprocess.run([*cli, "scale", "cli-dask", "many"], capture_output=True, text=True)
    assert bad.returncode == 2 and "workers 'many' must be a whole number" in bad.stderr
    assert subprocess.run([*cli, "scale", "cli-dask", "2"], capture_output=True, text=True).returncode == 0
    down = subprocess.run([*cli, "down", "cli-dask"], capture_output=True, text=True)
    assert down.stdout.strip() == "cli-dask stopped and removed"
    assert Service().store.list() == []
