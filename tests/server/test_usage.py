"""Each workload's REST record carries its resource usage summary (null when it has none)."""

from __future__ import annotations

import time

from workbench.service import Service
from workbench.store import Workload

from .conftest import Api


def _record(name: str) -> Workload:
    return Workload(
        id=name,
        kind="pod",
        backend="local",
        status="succeeded",
        spec={"kind": "pod"},
        run_dir=f"/nonexistent/runs/{name}",
        created=time.time(),
    )


async def test_records_carry_their_usage_summary(api: Api, service: Service) -> None:
    for name in ("sampled", "unsampled"):
        service.store.insert(_record(name))
    for t, rss in ((1.0, 300 * 2**20), (2.0, 100 * 2**20)):
        sample = {"t": t, "cpu_seconds": t, "cpu_percent": 95.0, "rss_bytes": rss, "threads": 3}
        service.store.record_usage("sampled", sample)

    listed = {w["name"]: w for w in (await api("GET", "workloads")).json["workloads"]}
    assert listed["unsampled"]["usage"] is None
    usage = listed["sampled"]["usage"]
    assert (usage["samples"], usage["peak_rss_bytes"], usage["avg_rss_bytes"]) == (
        2,
        300 * 2**20,
        200 * 2**20,
    )
    assert (usage["cpu_percent"], usage["gpu_util"], usage["threads"]) == (95.0, None, 3)

    one = await api("GET", "workloads", "sampled")
    assert one.code == 200 and one.json["usage"] == usage
    assert (await api("GET", "workloads", "unsampled")).json["usage"] is None
