"""Workload changes reach the page through the Jupyter Server event bus, whoever made them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.serverapp import ServerApp
from tornado.websocket import WebSocketClientConnection

from workbench.server.watcher import SCHEMA_ID, SCHEMA_PATH, Seen, diff
from workbench.service import Service

from .conftest import Api, workbench_app

CLI = [sys.executable, "-m", "workbench.cli"]


class Events:
    """The workbench events one websocket subscriber receives."""

    def __init__(self, ws: WebSocketClientConnection) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def until(self, match: Callable[[dict[str, Any]], bool], timeout: float = 30) -> dict[str, Any]:
        """The first event (old or new) that matches; fails after ``timeout`` seconds."""
        for event in self.seen:
            if match(event):
                return event
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no matching event; got {self.seen}"
            message = await asyncio.wait_for(self.ws.read_message(), remaining)
            assert message is not None, "the event socket closed"
            data = json.loads(message)
            if data.get("schema_id") != SCHEMA_ID:
                continue
            self.seen.append(data)
            if match(data):
                return data

    async def quiet(self, seconds: float) -> list[dict[str, Any]]:
        """Events that arrive within ``seconds``."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                message = await asyncio.wait_for(self.ws.read_message(), remaining)
            except TimeoutError:
                break
            data = json.loads(message or "{}")
            if data.get("schema_id") == SCHEMA_ID:
                got.append(data)
        return got


@pytest.fixture
def events(wb_server: ServerApp, jp_ws_fetch: Any, jp_asyncio_loop: asyncio.AbstractEventLoop) -> Events:
    """Subscribed to /api/events/subscribe, as JupyterLab's event stream is."""
    return Events(jp_asyncio_loop.run_until_complete(jp_ws_fetch("api", "events", "subscribe")))


async def cli(*args: str, cwd: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        *CLI, *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode().strip()


async def test_a_workload_launched_by_another_process_is_pushed(events: Events, tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text("print('from the cli')\n")
    name = await cli("run", "job.py", "--detach", cwd=tmp_path)

    added = await events.until(lambda e: e["name"] == name and e["action"] == "added")
    assert added["schema_id"] == SCHEMA_ID
    assert (added["kind"], added["backend"]) == ("pod", "local")
    assert added["status"] in ("pending", "running", "succeeded")
    done = await events.until(lambda e: e["name"] == name and e["status"] == "succeeded")
    assert done["action"] in ("added", "changed") and done["exit_code"] == 0

    await cli("rm", name, cwd=tmp_path)
    removed = await events.until(lambda e: e["name"] == name and e["action"] == "removed")
    assert removed["status"] == "succeeded"


async def test_a_cancel_from_another_process_is_pushed(events: Events, api: Api, tmp_path: Path) -> None:
    code = "import time\nprint('up', flush=True)\ntime.sleep(300)"
    name = (await api("POST", "workloads", body={"kind": "pod", "code": code})).json["name"]
    await events.until(lambda e: e["name"] == name and e["status"] == "running")
    await cli("cancel", name, cwd=tmp_path)
    cancelled = await events.until(lambda e: e["name"] == name and e["status"] == "cancelled")
    assert cancelled["action"] == "changed" and cancelled["message"] == "cancelled"


async def test_a_dead_supervisor_is_noticed_without_any_request(
    events: Events, api: Api, service: Service
) -> None:
    code = "import time\nprint('up', flush=True)\ntime.sleep(300)"
    name = (await api("POST", "workloads", body={"kind": "pod", "code": code})).json["name"]
    await events.until(lambda e: e["name"] == name and e["status"] == "running")
    record = service.store.get(name)
    assert record.supervisor_pid and record.pid
    os.kill(record.supervisor_pid, signal.SIGKILL)  # nothing will record an outcome now
    failed = await events.until(lambda e: e["name"] == name and e["status"] == "failed")
    assert "supervisor" in failed["message"]


async def test_a_replaced_store_is_followed(events: Events, tmp_path: Path, service: Service) -> None:
    (tmp_path / "job.py").write_text("pass\n")
    first = await cli("run", "job.py", "--detach", cwd=tmp_path)
    await events.until(lambda e: e["name"] == first and e["status"] == "succeeded")  # nothing active
    db = service.store.path
    service.close()
    for suffix in ("", "-wal", "-shm"):  # as a user who deletes the store would
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    second = await cli("run", "job.py", "--detach", cwd=tmp_path)  # recorded in a new store file
    added = await events.until(lambda e: e["name"] == second and e["action"] == "added")
    assert added["kind"] == "pod"


async def test_workloads_from_before_the_start_are_not_replayed(
    jp_serverapp: ServerApp, jp_ws_fetch: Any, service: Service
) -> None:
    old = service.launch({"kind": "pod", "name": "old", "code": "pass"})
    service.wait(old.id, timeout=30)
    await jp_serverapp.extension_manager.start_all_extensions()
    assert workbench_app(jp_serverapp).watcher.running
    events = Events(await jp_ws_fetch("api", "events", "subscribe"))
    assert await events.quiet(0.5) == []
    service.delete(old.id)
    removed = await events.until(lambda e: e["name"] == "old")
    assert removed["action"] == "removed"


async def test_the_watcher_stops_with_the_server(wb_server: ServerApp) -> None:
    watcher = workbench_app(wb_server).watcher
    assert watcher.running
    await wb_server.cleanup_extensions()
    assert not watcher.running


def test_the_event_schema_ships_next_to_the_code(jp_serverapp: ServerApp) -> None:
    assert SCHEMA_PATH.is_file()
    assert jp_serverapp.event_logger is not None
    schema = jp_serverapp.event_logger.schemas.get(SCHEMA_ID)
    assert str(schema.version) == "1"
    assert set(schema.properties) == {"action", "name", "kind", "backend", "status", "message", "exit_code"}


def test_diff_reports_added_changed_and_removed() -> None:
    pending = Seen("pod", "local", "pending", "", None, None, None)
    running = Seen("pod", "local", "running", "", None, 1.0, None)
    before = {"a": pending, "b": pending}
    after = {"a": running, "c": pending, "b": pending}
    assert [(e["action"], e["name"], e["status"]) for e in diff(before, after)] == [
        ("changed", "a", "running"),
        ("added", "c", "pending"),
    ]
    assert [(e["action"], e["name"]) for e in diff(after, {"c": pending})] == [
        ("removed", "a"),
        ("removed", "b"),
    ]
