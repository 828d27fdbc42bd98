"""The workloads REST API against real local pods."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import assert_nothing_created
from workbench.service import Service

from .conftest import Api, wait_until

SLEEPER = "import time\nprint('up', flush=True)\ntime.sleep(300)"


async def wait_for_output(api: Api, name: str, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in (await api("GET", "workloads", name, "logs")).text:
        assert time.monotonic() < deadline, f"{name} never printed {text!r}"
        await asyncio.sleep(0.05)


async def test_launch_a_pod_see_it_succeed_and_read_its_logs(api: Api) -> None:
    created = await api("POST", "workloads", body={"kind": "pod", "code": "print('hi')"})
    assert created.code == 201, created.body
    launched = created.json
    name = launched["name"]
    assert launched["id"] == name and launched["kind"] == "pod" and launched["backend"] == "local"
    assert launched["status"] in ("pending", "running", "succeeded")
    assert launched["age"] >= 0
    assert created.headers["Location"].endswith(f"/workbench/api/workloads/{name}")

    final = await wait_until(api, name)
    assert (final["status"], final["exit_code"]) == ("succeeded", 0)
    assert final["started"] is not None and final["ended"] >= final["started"]

    logs = await api("GET", "workloads", name, "logs")
    assert logs.code == 200
    assert logs.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert logs.text == "hi\n"
    followed = await api("GET", "workloads", name, "logs", params={"follow": "true"})
    assert (followed.code, followed.text) == (200, "hi\n")

    listed = (await api("GET", "workloads")).json["workloads"]
    assert [w["name"] for w in listed] == [name]
    assert listed[0]["status"] == "succeeded"


async def test_follow_streams_chunks_while_the_pod_runs(api: Api, jp_root_dir: Path, jp_fetch: Any) -> None:
    # the pod runs in the server's root directory and waits there for a file from the test
    code = (
        "import os, time\nprint('one', flush=True)\n"
        "while not os.path.exists('go'):\n    time.sleep(0.02)\nprint('two')"
    )
    name = (await api("POST", "workloads", body={"kind": "pod", "code": code})).json["name"]
    chunks: list[bytes] = []
    request = jp_fetch(
        "workbench", "api", "workloads", name, "logs", params={"follow": "true"},
        streaming_callback=chunks.append, request_timeout=60,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while b"one" not in b"".join(chunks):
        assert time.monotonic() < deadline, "the first line never arrived while following"
        await asyncio.sleep(0.02)
    assert (await api("GET", "workloads", name)).json["status"] == "running"
    (jp_root_dir / "go").touch()
    response = await request
    assert response.code == 200
    assert b"".join(chunks).decode() == "one\ntwo\n"
    assert (await wait_until(api, name))["status"] == "succeeded"


async def test_a_follower_that_disconnects_releases_its_thread(
    api: Api, jp_http_port: int, jp_base_url: str, jp_auth_header: dict[str, str]
) -> None:
    code = "import time\nwhile True:\n    print('tick', flush=True)\n    time.sleep(0.05)"
    name = (await api("POST", "workloads", body={"kind": "pod", "code": code})).json["name"]
    reader, writer = await asyncio.open_connection("127.0.0.1", jp_http_port)
    path = f"{jp_base_url}workbench/api/workloads/{name}/logs?follow=true"
    head = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{jp_http_port}"]
    head += [f"{key}: {value}" for key, value in jp_auth_header.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    received = await asyncio.wait_for(reader.readuntil(b"tick"), 30)
    assert b" 200 " in received.split(b"\r\n")[0]
    assert b"text/plain; charset=utf-8" in received

    def readers() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name == f"workbench-logs-{name}"]

    assert readers()
    writer.close()
    deadline = time.monotonic() + 10
    while readers():
        assert time.monotonic() < deadline, "the log reader outlived its client"
        await asyncio.sleep(0.05)
    assert (await api("GET", "workloads", name)).json["status"] == "running"
    assert (await api("POST", "workloads", name, "cancel")).json["status"] == "cancelled"


async def test_list_is_newest_first_and_filters(api: Api) -> None:
    for name in ("first", "second"):
        spec = {"kind": "pod", "name": name, "code": "pass"}
        assert (await api("POST", "workloads", body=spec)).code == 201
        await wait_until(api, name)

    async def names(**params: str) -> list[str]:
        reply = await api("GET", "workloads", params=params)
        assert reply.code == 200, reply.body
        return [w["name"] for w in reply.json["workloads"]]

    assert await names() == ["second", "first"]
    assert await names(kind="pod") == ["second", "first"]
    assert await names(kind="dask") == []
    assert await names(status="succeeded") == ["second", "first"]
    assert await names(status="running,pending") == []
    assert await names(backend="local") == ["second", "first"]
    assert await names(backend="kubernetes") == []
    for params in ({"kind": "vm"}, {"status": "done"}):
        reply = await api("GET", "workloads", params=params)
        assert reply.code == 400 and reply.json["error"] == "SpecError", reply.body


async def test_cancel_a_sleeping_pod_then_delete_it(api: Api) -> None:
    name = (await api("POST", "workloads", body={"kind": "pod", "code": SLEEPER})).json["name"]
    await wait_for_output(api, name, "up")
    described = await api("GET", "workloads", name)
    assert described.json["status"] == "running" and described.json["pid"]

    refused = await api("DELETE", "workloads", name, params={"force": "false"})
    assert refused.code == 409
    assert refused.json["error"] == "Conflict" and "still running" in refused.json["message"]

    cancelled = await api("POST", "workloads", name, "cancel")
    assert cancelled.code == 200
    assert cancelled.json["status"] == "cancelled"

    assert (await api("DELETE", "workloads", name)).code == 204
    assert (await api("GET", "workloads", name)).code == 404
    assert (await api("GET", "workloads")).json["workloads"] == []


async def test_force_delete_stops_a_running_pod(api: Api, service: Service) -> None:
    name = (await api("POST", "workloads", body={"kind": "pod", "code": SLEEPER})).json["name"]
    await wait_for_output(api, name, "up")
    pid = (await api("GET", "workloads", name)).json["pid"]
    assert (await api("DELETE", "workloads", name, params={"force": "true"})).code == 204
    assert service.store.list() == []
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    bad = await api("DELETE", "workloads", "whatever", params={"force": "maybe"})
    assert bad.code == 400 and "force" in bad.json["message"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"kind": "pod", "code": "pass", "resources": {"cpu": "lots"}}, "cpu"),
        ({"kind": "pod", "code": "pass", "gpus_please": 3}, "gpus_please"),
        ({"kind": "pod"}, "exactly one of code"),
        ({"kind": "vm", "code": "pass"}, "unknown kind 'vm'"),
        ({"kind": "pod", "code": "pass", "resources": {"gpus": 64}}, "64 GPUs"),
        ({"kind": "pod", "code": "pass", "send": ["x"]}, "no such variable"),
        ({"kind": "pod", "code": "pass", "profile": "huge"}, "unknown profile 'huge'"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ("", "empty"),
    ],
)
async def test_bad_input_is_400_with_one_line_and_creates_nothing(
    api: Api, service: Service, body: Any, words: str
) -> None:
    reply = await api("POST", "workloads", body=body)
    assert reply.code == 400, reply.body
    error = reply.json
    assert error["error"] == "SpecError"
    assert words in error["message"] and "\n" not in error["message"]
    assert set(error) == {"error", "message", "value", "hint", "fields"}
    assert isinstance(error["fields"], list)
    assert all(set(f) == {"field", "message"} and "--" not in f["message"] for f in error["fields"])
    assert_nothing_created(service)


async def test_a_taken_name_is_409(api: Api) -> None:
    spec = {"kind": "pod", "name": "twice", "code": "pass"}
    assert (await api("POST", "workloads", body=spec)).code == 201
    again = await api("POST", "workloads", body=spec)
    assert again.code == 409 and again.json["error"] == "Conflict" and again.json["value"] == "twice"


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ()), ("DELETE", ()), ("POST", ("cancel",)), ("GET", ("logs",)), ("POST", ("scale",))],
)
async def test_an_unknown_workload_is_404(api: Api, method: str, suffix: tuple[str, ...]) -> None:
    body = {"workers": 2} if suffix == ("scale",) else None
    reply = await api(method, "workloads", "nobody", *suffix, body=body)
    assert reply.code == 404, reply.body
    assert reply.json["error"] == "NotFound" and reply.json["value"] == "nobody"


async def test_scaling_applies_to_dask_workloads_only(api: Api) -> None:
    name = (await api("POST", "workloads", body={"kind": "pod", "code": "pass"})).json["name"]
    for body in ({"workers": 3}, {"adapt": "1:4"}):
        reply = await api("POST", "workloads", name, "scale", body=body)
        assert reply.code == 400, reply.body
        assert "scaling applies to dask workloads" in reply.json["message"]
    for body, words in [
        ({}, "either"),
        ({"workers": 2, "adapt": "1:2"}, "either"),
        ({"workers": -1}, "whole number"),
        ({"workers": True}, "whole number"),
        ({"adapt": "5:2"}, "MIN above MAX"),
        ({"adapt": "lots"}, "MIN:MAX"),
    ]:
        reply = await api("POST", "workloads", name, "scale", body=body)
        assert reply.code == 400 and words in reply.json["message"], (body, reply.body)


async def test_scale_and_adapt_a_local_dask_cluster(api: Api) -> None:
    created = await api("POST", "workloads", body={"kind": "dask", "workers": 1})
    assert created.code == 201, created.body
    name = created.json["name"]
    await wait_until(api, name, ("running",))
    scaled = await api("POST", "workloads", name, "scale", body={"workers": 2}, request_timeout=60)
    assert scaled.code == 200, scaled.body
    assert scaled.json["name"] == name and scaled.json["info"]["requested_workers"] == 2
    adapted = await api("POST", "workloads", name, "scale", body={"adapt": "1:3"}, request_timeout=60)
    assert adapted.code == 200, adapted.body
    assert adapted.json["info"]["adapt"] == [1, 3]
    assert (await api("POST", "workloads", name, "cancel")).json["status"] == "cancelled"
