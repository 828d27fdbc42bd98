"""``GET /workbench/metrics``: Prometheus' text format, authenticated like jupyter_server's ``/metrics``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tornado.httpclient import HTTPResponse

from workbench.errors import StoreError
from workbench.server.metrics import WorkbenchMetrics
from workbench.service import Service
from workbench.store import Workload

from .conftest import Api, wait_until, workbench_app

Fetch = Callable[..., Awaitable[HTTPResponse]]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample, by its name and sorted labels (families parsed by prometheus_client)."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def named(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


async def scrape(jp_fetch: Fetch, **kwargs: Any) -> HTTPResponse:
    return await jp_fetch("workbench", "metrics", method="GET", raise_error=False, **kwargs)


async def metrics(jp_fetch: Fetch) -> Samples:
    reply = await scrape(jp_fetch)
    assert reply.code == 200, reply.body
    assert reply.headers["Content-Type"] == prometheus_client.CONTENT_TYPE_LATEST
    return parse(reply.body.decode())


async def test_refuses_unauthenticated_requests(wb_server: Any, jp_fetch: Fetch) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "token not-the-token"}):
        reply = await scrape(jp_fetch, headers=headers)
        assert reply.code == 403, reply.body
        assert b"workbench_" not in (reply.body or b"")
    samples = await metrics(jp_fetch)  # the test client's token
    assert value(samples, "workbench_usage_series_dropped") == 0


async def test_bearer_token_as_prometheus_sends_it(
    wb_server: Any, jp_fetch: Fetch, jp_auth_header: Any
) -> None:
    token = jp_auth_header["Authorization"].split()[-1]
    reply = await scrape(jp_fetch, headers={"Authorization": f"Bearer {token}"})
    assert reply.code == 200, reply.body


@pytest.mark.parametrize("server_config", [{"authenticate_prometheus": False}])
async def test_open_when_jupyter_server_says_so(wb_server: Any, jp_fetch: Fetch) -> None:
    reply = await scrape(jp_fetch, headers={"Authorization": ""})
    assert reply.code == 200, reply.body
    assert value(parse(reply.body.decode()), "workbench_usage_series_dropped") == 0


async def wait_for(jp_fetch: Fetch, test: Callable[[Samples], bool], timeout: float = 20) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        samples = await metrics(jp_fetch)
        if test(samples):
            return samples
        assert time.monotonic() < deadline, samples
        await asyncio.sleep(0.1)


async def test_counters_move_when_workloads_launch_and_end(api: Api, jp_fetch: Fetch) -> None:
    pod = {"kind": "pod", "backend": "local"}
    before = await metrics(jp_fetch)
    assert named(before, "workbench_launches_total") == {}

    # a launch counts at once; a running workload gets usage gauges (its supervisor samples it)
    created = await api(
        "POST", "workloads", body={**pod, "name": "sleeper", "code": "import time\ntime.sleep(60)"}
    )
    assert created.code == 201, created.body
    samples = await metrics(jp_fetch)
    assert value(samples, "workbench_launches_total", kind="pod", backend="local") == 1
    assert named(samples, "workbench_launch_outcomes_total") == {}
    await wait_until(api, "sleeper", ("running",))
    who = {"workload": "sleeper", "kind": "pod", "backend": "local"}
    samples = await wait_for(
        jp_fetch, lambda s: value(s, "workbench_workload_memory_bytes", **who) is not None
    )
    assert (value(samples, "workbench_workload_memory_bytes", **who) or 0) > 1_000_000
    assert (value(samples, "workbench_workload_cpu_cores", **who) or 0) >= 0
    assert value(samples, "workbench_workloads", kind="pod", backend="local", status="running") == 1
    assert value(samples, "workbench_launch_to_running_seconds_count", kind="pod", backend="local") == 1

    # one that ends: its outcome and duration are counted
    created = await api("POST", "workloads", body={**pod, "name": "quick", "code": "print(1)"})
    assert created.code == 201, created.body
    assert (await wait_until(api, "quick"))["status"] == "succeeded"
    ended = {"kind": "pod", "backend": "local", "outcome": "succeeded"}
    samples = await metrics(jp_fetch)
    assert value(samples, "workbench_launches_total", kind="pod", backend="local") == 2
    assert value(samples, "workbench_launch_outcomes_total", **ended) == 1
    assert value(samples, "workbench_run_duration_seconds_count", **ended) == 1
    assert value(samples, "workbench_run_duration_seconds_bucket", **ended, le="+Inf") == 1
    assert (value(samples, "workbench_run_duration_seconds_sum", **ended) or 0) > 0
    assert value(samples, "workbench_workloads", kind="pod", backend="local", status="succeeded") == 1

    # cancelled: counted as such, and its usage gauges go (no series of a finished workload)
    assert (await api("POST", "workloads", "sleeper", "cancel")).code == 200
    assert (await wait_until(api, "sleeper"))["status"] == "cancelled"
    samples = await metrics(jp_fetch)
    assert (
        value(samples, "workbench_launch_outcomes_total", kind="pod", backend="local", outcome="cancelled")
        == 1
    )
    assert named(samples, "workbench_workload_memory_bytes") == {}
    assert value(samples, "workbench_workloads", kind="pod", backend="local", status="running") == 0

    # deleting a record lowers the gauge of records, never a counter of this server
    assert (await api("DELETE", "workloads", "quick")).code == 204
    samples = await metrics(jp_fetch)
    assert value(samples, "workbench_workloads", kind="pod", backend="local", status="succeeded") == 0
    assert value(samples, "workbench_launches_total", kind="pod", backend="local") == 2
    assert value(samples, "workbench_launch_outcomes_total", **ended) == 1
    assert value(samples, "workbench_run_duration_seconds_count", **ended) == 1


def _record(name: str, status: str, **fields: Any) -> Workload:
    now = time.time()
    data: dict[str, Any] = {
        "id": name,
        "kind": "train",
        "backend": "kubernetes",
        "status": status,
        "spec": {"kind": "train"},
        "run_dir": f"/nonexistent/runs/{name}",
        "created": now - 100,
        "started": now - 90,
        **fields,
    }
    if status in ("succeeded", "failed", "cancelled"):
        data.setdefault("ended", now)
    return Workload(**data)


@pytest.fixture
def finish_all(service: Service) -> Any:
    """Records of a backend not reachable here are finished by hand, not cancelled through it."""
    yield
    for workload in service.store.list(status=["pending", "running"]):
        service.store.finish(workload.id, "cancelled", exit_code=None, message="")


def test_outcomes_durations_and_bounded_usage_series(service: Service, finish_all: None) -> None:
    store = service.store
    store.insert(_record("timed", "failed", message="timed out after 10s and was stopped"))
    store.insert(_record("broken", "failed", message="exit code 1"))
    for name in ("old-run", "new-run"):
        created = time.time() - (50 if name == "old-run" else 20)
        store.insert(_record(name, "running", created=created, started=created + 10))
        store.record_usage(
            name,
            {"t": time.time(), "cpu_seconds": 3.0, "cpu_percent": 250.0, "rss_bytes": 2**30, "threads": 4,
             "gpu_util": 50.0, "gpu_memory_bytes": 2**31},
        )  # fmt: skip
    exporter = WorkbenchMetrics(max_series=1)
    samples = parse(exporter.exposition(service).decode())

    where = {"kind": "train", "backend": "kubernetes"}
    assert value(samples, "workbench_launch_outcomes_total", **where, outcome="timed_out") == 1
    assert value(samples, "workbench_launch_outcomes_total", **where, outcome="failed") == 1
    assert value(samples, "workbench_launch_to_running_seconds_count", **where) == 4
    assert value(samples, "workbench_launch_to_running_seconds_bucket", **where, le="10.0") == 4
    assert value(samples, "workbench_launch_to_running_seconds_bucket", **where, le="5.0") == 0
    assert value(samples, "workbench_run_duration_seconds_bucket", **where, outcome="failed", le="60.0") == 0
    assert value(samples, "workbench_run_duration_seconds_bucket", **where, outcome="failed", le="300.0") == 1
    assert value(samples, "workbench_workloads", **where, status="pending") == 0
    assert value(samples, "workbench_workloads", **where, status="running") == 2

    # only the newest running workload gets gauges; the other is counted as dropped
    new = {"workload": "new-run", **where}
    assert named(samples, "workbench_workload_cpu_cores") == {tuple(sorted(new.items())): 2.5}
    assert value(samples, "workbench_workload_memory_bytes", **new) == 2**30
    assert value(samples, "workbench_workload_gpu_utilization_ratio", **new) == 0.5
    assert value(samples, "workbench_workload_gpu_memory_bytes", **new) == 2**31
    assert value(samples, "workbench_usage_series_dropped") == 1

    store.finish("new-run", "succeeded", exit_code=0, message="")
    samples = parse(exporter.exposition(service).decode())
    assert named(samples, "workbench_workload_cpu_cores") == {
        tuple(sorted({"workload": "old-run", **where}.items())): 2.5
    }
    assert value(samples, "workbench_usage_series_dropped") == 0


async def test_usage_of_one_workload_over_time(api: Api, service: Service, finish_all: None) -> None:
    """``GET workloads/NAME/usage?since=``: the summary and the samples (after ``since``)."""
    service.store.insert(_record("sampled", "running", backend="local"))
    for t in (1.0, 2.0, 3.0):
        service.store.record_usage(
            "sampled", {"t": t, "cpu_seconds": t, "cpu_percent": 50.0 * t, "rss_bytes": 2**20, "threads": 1}
        )
    reply = await api("GET", "workloads", "sampled", "usage")
    assert reply.code == 200, reply.body
    usage = reply.json
    assert (usage["source"], usage["note"], usage["summary"]["peak_cpu_percent"]) == ("psutil", None, 150.0)
    assert [s["t"] for s in usage["history"]] == [1.0, 2.0, 3.0]
    later = await api("GET", "workloads", "sampled", "usage", params={"since": "1.5"})
    assert [s["cpu_percent"] for s in later.json["history"]] == [100.0, 150.0]
    assert later.json["summary"] == usage["summary"]

    assert (await api("GET", "workloads", "sampled", "usage", params={"since": "soon"})).code == 400
    assert (await api("GET", "workloads", "sampled", "usage", params={"since": "nan"})).code == 400
    assert (await api("GET", "workloads", "nobody", "usage")).code == 404
    assert (await api("GET", "workloads", "sampled", "usage", headers={"Authorization": ""})).code == 403


async def test_an_unreadable_store_is_a_503(
    wb_server: Any, jp_fetch: Fetch, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreadable(service: Service) -> bytes:
        raise StoreError("the workload store is corrupt", reason="corrupt")

    monkeypatch.setattr(workbench_app(wb_server).metrics, "exposition", unreadable)
    reply = await scrape(jp_fetch)
    assert reply.code == 503
