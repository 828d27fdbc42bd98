"""The endpoint REST API (serve workloads): rollouts, undo, promotion, revisions, scaling."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import assert_nothing_created
from workbench.service import Service

from .conftest import Api, wait_until
from .test_auth import NoWorkbench

ECHO = "def predict(inputs):\n    return inputs\n"
DOUBLE = "def predict(inputs):\n    return inputs * 2\n"
BROKEN = (
    "def load(model_uri):\n    raise RuntimeError('weights are corrupt')\n\n"
    "def predict(inputs):\n    return inputs\n"
)
ENDPOINTS = [
    ("GET", ("rollout",), None),
    ("POST", ("rollout",), {"change": {"env": {"A": "1"}}}),
    ("POST", ("rollout",), {"action": "undo"}),
    ("POST", ("rollout",), {"action": "promote"}),
    ("GET", ("revisions",), None),
    ("POST", ("endpoint-scale",), {"replicas": 2}),
]
IDS = ["status", "change", "undo", "promote", "revisions", "scale"]


async def settled(api: Api, name: str, timeout: float = 120) -> Any:
    """Poll GET workloads/NAME/rollout until the rollout is complete or failed; the state."""
    deadline = time.monotonic() + timeout
    while True:
        reply = await api("GET", "workloads", name, "rollout")
        assert reply.code == 200, reply.body
        if reply.json["phase"] != "progressing":
            return reply.json
        assert time.monotonic() < deadline, f"{name} still progressing: {reply.json}"
        await asyncio.sleep(0.1)


async def serve(api: Api, code: str = ECHO, **fields: Any) -> str:
    created = await api("POST", "workloads", body={"kind": "serve", "code": code, **fields})
    assert created.code == 201, created.body
    name: str = created.json["name"]
    assert created.json["kind"] == "serve"
    state = await settled(api, name)
    assert state["phase"] == "complete", state
    return name


@pytest.mark.parametrize(("method", "suffix", "body"), ENDPOINTS, ids=IDS)
async def test_no_token_is_refused(
    api: Api, service: Service, method: str, suffix: tuple[str, ...], body: Any
) -> None:
    reply = await api(method, "workloads", "some", *suffix, body=body, headers={"Authorization": ""})
    assert reply.code == 403, reply.body
    wrong = await api(method, "workloads", "some", *suffix, body=body, headers={"Authorization": "token no"})
    assert wrong.code == 403, wrong.body
    assert_nothing_created(service)


@pytest.mark.parametrize("server_config", [{"authorizer_class": NoWorkbench}])
@pytest.mark.parametrize(("method", "suffix", "body"), ENDPOINTS, ids=IDS)
async def test_the_authorizer_decides(
    api: Api, service: Service, method: str, suffix: tuple[str, ...], body: Any
) -> None:
    reply = await api(method, "workloads", "some", *suffix, body=body)
    assert reply.code == 403, reply.body
    assert_nothing_created(service)


@pytest.mark.parametrize(("method", "suffix", "body"), ENDPOINTS, ids=IDS)
async def test_an_unknown_endpoint_is_404(api: Api, method: str, suffix: tuple[str, ...], body: Any) -> None:
    reply = await api(method, "workloads", "nobody", *suffix, body=body)
    assert reply.code == 404, reply.body
    assert reply.json["error"] == "NotFound" and reply.json["value"] == "nobody"


@pytest.mark.parametrize(("method", "suffix", "body"), ENDPOINTS, ids=IDS)
async def test_a_pod_is_not_an_endpoint(api: Api, method: str, suffix: tuple[str, ...], body: Any) -> None:
    name = (await api("POST", "workloads", body={"kind": "pod", "code": "pass"})).json["name"]
    reply = await api(method, "workloads", name, *suffix, body=body)
    assert reply.code == 400, reply.body
    assert reply.json["error"] == "SpecError" and reply.json["value"] == name
    assert "pod workload" in reply.json["message"] and "serve" in reply.json["message"]


@pytest.mark.parametrize(
    ("suffix", "body", "words"),
    [
        ("rollout", "", "empty"),
        ("rollout", "{nope", "not valid JSON"),
        ("rollout", "[]", "must be a JSON object"),
        ("rollout", {}, "send a change or an action"),
        ("rollout", {"action": "restart"}, "'restart'"),
        ("rollout", {"action": "promote", "to_revision": 1}, "promote takes action, not to_revision"),
        ("rollout", {"action": "undo", "canary": 5}, "not canary"),
        ("rollout", {"change": {"env": {"A": "1"}}, "action": "undo"}, "nothing else"),
        ("rollout", {"change": "new.py"}, "change must be an object"),
        ("rollout", {"change": {}}, "a rollout needs a change"),
        ("rollout", {"change": {"env": {"A": "1"}, "canary": 101}}, "canary"),
        ("rollout", {"change": {"env": {"A": "1"}, "replicas": 3}}, "replicas"),
        ("rollout", {"change": {"code": ECHO, "send": ["model"]}}, "has no kernel"),
        ("rollout", {"change": {"code": ECHO, "script": "m.py"}}, "not both"),
        ("rollout", {"action": "undo", "to_revision": 0}, "revision number"),
        ("rollout", {"action": "undo", "to_revision": "2"}, "revision number"),
        ("endpoint-scale", {}, '{"replicas": N}'),
        ("endpoint-scale", {"workers": 2}, "not workers"),
        ("endpoint-scale", {"replicas": 0}, "from 1 to 100"),
        ("endpoint-scale", {"replicas": 101}, "from 1 to 100"),
        ("endpoint-scale", {"replicas": True}, "whole number"),
        ("endpoint-scale", {"replicas": 1.5}, "whole number"),
        ("endpoint-scale", {"autoscale": "4:2"}, "MIN above MAX"),
        ("endpoint-scale", {"autoscale": "0:2"}, "1 to 100 replicas"),
        ("endpoint-scale", {"autoscale": [1, 4]}, "text like"),
        ("endpoint-scale", {"autoscale": None}, '{"replicas": N}'),
    ],
)
async def test_bad_bodies_are_400_in_one_line(
    api: Api, service: Service, suffix: str, body: Any, words: str
) -> None:
    # checked before the endpoint is looked up: a name that does not exist gets the same answer
    reply = await api("POST", "workloads", "nobody", suffix, body=body)
    assert reply.code == 400, reply.body
    error = reply.json
    assert error["error"] == "SpecError" and set(error) == {"error", "message", "value", "hint", "fields"}
    assert words in error["message"] and "\n" not in error["message"], error
    assert_nothing_created(service)


async def test_a_file_outside_the_root_is_refused(api: Api, tmp_path: Path) -> None:
    outside = tmp_path / "model.py"
    outside.write_text(ECHO)
    for script, code in ((str(outside), 403), ("../model.py", 403), ("s3://bucket/m.py", 400)):
        reply = await api("POST", "workloads", "nobody", "rollout", body={"change": {"script": script}})
        assert reply.code == code, (script, reply.body)


async def test_serve_roll_out_canary_promote_undo_and_scale(
    api: Api, service: Service, jp_root_dir: Path
) -> None:
    name = await serve(api)
    record = (await api("GET", "workloads", name)).json
    info = record["info"]
    assert record["status"] == "running" and info["url"].startswith("http://127.0.0.1:")
    assert (info["revision"], info["canary"], info["ready"], info["desired"]) == (1, None, 1, 1)
    assert info["rps"] >= 0 and info["rollout"]["phase"] == "complete"
    revisions = (await api("GET", "workloads", name, "revisions")).json["revisions"]
    assert [(r["revision"], r["state"]) for r in revisions] == [(1, "serving")]

    # a new revision from a file in the server's root: answers at once, while it progresses
    (jp_root_dir / "double.py").write_text(DOUBLE)
    started = await api("POST", "workloads", name, "rollout", body={"change": {"script": "double.py"}})
    assert started.code == 200, started.body
    assert started.json["generation"] == 2 and started.json["phase"] in ("progressing", "complete")
    state = await settled(api, name)
    assert (state["phase"], state["revision"], state["traffic"]) == ("complete", 2, {"2": 100})
    assert service.predict(name, [[1.0, 2.0]]).tolist() == [[2.0, 4.0]]

    # a canary gets a share of the requests until it is promoted
    canary = await api("POST", "workloads", name, "rollout", body={"change": {"code": ECHO, "canary": 50}})
    assert canary.code == 200, canary.body
    state = await settled(api, name)
    assert (state["revision"], state["canary"], state["traffic"]) == (2, 3, {"2": 50, "3": 50})
    assert (await api("GET", "workloads", name)).json["info"]["canary"] == 3
    promoted = await api("POST", "workloads", name, "rollout", body={"action": "promote"})
    assert promoted.code == 200, promoted.body
    state = await settled(api, name)
    assert (state["revision"], state["canary"], state["traffic"]) == (3, None, {"3": 100})
    again = await api("POST", "workloads", name, "rollout", body={"action": "promote"})
    assert again.code == 409 and again.json["error"] == "Conflict" and "no canary" in again.json["message"]

    # undo goes back to the revision before (2, doubling) as a new revision
    undone = await api("POST", "workloads", name, "rollout", body={"action": "undo"})
    assert undone.code == 200, undone.body
    state = await settled(api, name)
    assert (state["phase"], state["revision"]) == ("complete", 4)
    assert service.predict(name, [[1.0]]).tolist() == [[2.0]]
    back = await api("POST", "workloads", name, "rollout", body={"action": "undo", "to_revision": 1})
    assert back.code == 200, back.body
    assert (await settled(api, name))["revision"] == 5
    assert service.predict(name, [[1.0]]).tolist() == [[1.0]]
    revisions = (await api("GET", "workloads", name, "revisions")).json["revisions"]
    assert [r["revision"] for r in revisions] == [1, 2, 3, 4, 5]
    assert [r["state"] for r in revisions][-1] == "serving" and "undo to 1" in revisions[-1]["cause"]

    # scaling answers with the record; the router reaches the new size
    scaled = await api("POST", "workloads", name, "endpoint-scale", body={"replicas": 2})
    assert scaled.code == 200, scaled.body
    assert scaled.json["name"] == name and scaled.json["kind"] == "serve"
    deadline = time.monotonic() + 120
    while (info := (await api("GET", "workloads", name)).json["info"])["ready"] != 2 or info["desired"] != 2:
        assert time.monotonic() < deadline, info
        await asyncio.sleep(0.1)
    autoscaled = await api("POST", "workloads", name, "endpoint-scale", body={"autoscale": "1:3"})
    assert autoscaled.code == 200, autoscaled.body

    assert (await api("POST", "workloads", name, "cancel")).json["status"] == "cancelled"
    assert (await wait_until(api, name))["status"] == "cancelled"


async def test_a_failed_rollout_is_a_state_and_the_old_revision_keeps_serving(
    api: Api, service: Service
) -> None:
    name = await serve(api)
    no_model = await api("POST", "workloads", name, "rollout", body={"change": {"code": "x = 1\n"}})
    assert no_model.code == 400 and "predict" in no_model.json["message"], no_model.body
    started = await api("POST", "workloads", name, "rollout", body={"change": {"code": BROKEN}})
    assert started.code == 200, started.body
    state = await settled(api, name)
    assert state["phase"] == "failed" and "weights are corrupt" in state["message"], state
    assert "\n" not in state["message"]
    assert (state["revision"], state["traffic"]) == (1, {"1": 100})
    assert service.predict(name, [[3.0]]).tolist() == [[3.0]]
    record = (await api("GET", "workloads", name)).json
    assert record["status"] == "running" and record["info"]["revision"] == 1
