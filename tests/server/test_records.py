"""What a record says beyond the store: a duration that stops when the workload ends, and which cell a
notebook run is executing (pushed as a change when it moves on)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import nbformat
from jupyter_server.serverapp import ServerApp

from workbench.server.base import record
from workbench.store import Workload

from .conftest import Api, wait_until
from .test_events import Events

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
CELLS = [
    "import os, time",
    "while not os.path.exists('one'):\n    time.sleep(0.02)",
    "while not os.path.exists('two'):\n    time.sleep(0.02)",
]


async def test_a_notebook_run_shows_its_cell_and_duration(
    api: Api, wb_server: ServerApp, jp_ws_fetch: Any, jp_root_dir: Path
) -> None:
    events = Events(await jp_ws_fetch("api", "events", "subscribe"))
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    nb.cells.append(nbformat.v4.new_markdown_cell("# waits for a file"))
    nb.cells.extend(nbformat.v4.new_code_cell(source) for source in CELLS)
    nbformat.write(nb, str(jp_root_dir / "wait.ipynb"))
    name = (await api("POST", "workloads", body={"kind": "notebook", "notebook": "wait.ipynb"})).json["name"]

    deadline = time.monotonic() + 120
    while True:
        running = (await api("GET", "workloads", name)).json
        if running["progress"] and running["progress"]["done"] == 2:
            break
        assert running["status"] in ("pending", "running"), running
        assert time.monotonic() < deadline, running
        await asyncio.sleep(0.05)
    assert running["progress"] == {"done": 2, "total": 4, "label": "cell 3 of 4"}
    listed = (await api("GET", "workloads")).json["workloads"]
    assert listed[0]["progress"] == running["progress"]
    assert running["duration_seconds"] is not None and running["duration_seconds"] >= 0
    assert "workers_live" not in running  # Dask only
    # the move to the next cell goes out as a change, though nothing else about the run changes
    await events.until(lambda e: e["name"] == name and e["status"] == "running")
    await events.quiet(1.0)
    events.seen.clear()  # only what comes from here on
    (jp_root_dir / "one").touch()
    moved = await events.until(lambda e: e["name"] == name and e["action"] == "changed", timeout=10)
    assert moved["status"] == "running"
    assert (await api("GET", "workloads", name)).json["progress"]["label"] == "cell 4 of 4"

    (jp_root_dir / "two").touch()
    final = await wait_until(api, name, timeout=120)
    assert final["status"] == "succeeded", final
    assert final["progress"] is None
    assert final["duration_seconds"] == round(final["ended"] - final["started"], 3)
    await asyncio.sleep(0.2)
    later = (await api("GET", "workloads", name)).json
    assert later["duration_seconds"] == final["duration_seconds"]  # stops counting once ended
    assert later["age"] > final["age"]


def test_no_duration_before_the_start_and_live_workers_only_when_recorded() -> None:
    now = time.time()
    pending = Workload("p", "pod", "local", "pending", {}, "", created=now - 5)
    assert record(pending)["duration_seconds"] is None and record(pending)["progress"] is None
    running = Workload("r", "pod", "local", "running", {}, "", created=now - 5, started=now - 3)
    assert 3 <= record(running)["duration_seconds"] < 4  # elapsed so far
    dask = Workload("d", "dask", "local", "running", {}, "", created=now, info={"requested_workers": 2})
    assert record(dask)["workers_live"] is None
    dask.info["workers_live"] = 3
    assert record(dask)["workers_live"] == 3
