"""Schemas, profiles and backends: what the sidebar builds its forms from."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from workbench.config import load_settings
from workbench.spec import KINDS, json_schema

from .conftest import Api

NS = "team-a"
PROFILES = """
profiles:
  a100-small:
    description: one A100, 32Gi
    resources: {gpus: 1, gpu_type: NVIDIA-A100-SXM4-80GB, memory: 32Gi}
    timeout: 2h
    env: {HF_HOME: /data/hf}
  cpu-big:
    resources: {cpu: "16", memory: 64Gi}
"""


async def test_schemas_of_every_kind(api: Api) -> None:
    reply = await api("GET", "schemas")
    assert reply.code == 200
    assert reply.json == {kind: json_schema(kind) for kind in KINDS}
    assert "code" in reply.json["pod"]["properties"]
    one = await api("GET", "schemas", "notebook")
    assert (one.code, one.json) == (200, json_schema("notebook"))
    unknown = await api("GET", "schemas", "vm")
    assert unknown.code == 404 and unknown.json["error"] == "NotFound" and unknown.json["value"] == "vm"


@pytest.fixture
def profiles_config(wb_home: Path) -> None:
    Path(os.environ["WORKBENCH_CONFIG"]).write_text(PROFILES)


@pytest.fixture
def broken_config(wb_home: Path) -> None:
    Path(os.environ["WORKBENCH_CONFIG"]).write_text("profiles: [unclosed\n")


@pytest.fixture
def no_cluster(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("WORKBENCH_LOCAL_GPUS", "0,1")
    monkeypatch.setenv("WORKBENCH_KUBERNETES__KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))


@pytest.mark.parametrize("before_server", [("profiles_config",)], indirect=True)
async def test_profiles_come_from_the_config_file(api: Api) -> None:
    reply = await api("GET", "profiles")
    assert reply.code == 200
    profiles = reply.json["profiles"]
    assert profiles == {name: p.model_dump(mode="json") for name, p in load_settings().profiles.items()}
    assert profiles["a100-small"]["resources"]["gpus"] == 1
    assert profiles["a100-small"]["timeout"] == 7200
    assert profiles["cpu-big"]["description"] is None


async def test_no_config_means_no_profiles(api: Api) -> None:
    assert (await api("GET", "profiles")).json == {"profiles": {}}


@pytest.mark.parametrize("before_server", [("broken_config",)], indirect=True)
async def test_a_broken_config_is_a_400_not_a_500(api: Api) -> None:
    for path in ("profiles", "backends", "workloads"):
        reply = await api("GET", path)
        assert reply.code == 400, reply.body
        assert reply.json["error"] == "SpecError" and "config file" in reply.json["message"]
    assert (await api("GET", "schemas", "pod")).code == 200  # needs no settings


@pytest.mark.parametrize("before_server", [("no_cluster",)], indirect=True)
async def test_backends_without_a_cluster(api: Api) -> None:
    reply = await api("GET", "backends")
    assert reply.code == 200
    assert reply.json["default"] == "local"
    assert reply.json["backends"]["local"] == {"available": True, "gpus": ["0", "1"]}
    kube = reply.json["backends"]["kubernetes"]
    assert kube["available"] is False and kube["gpus"] is None
    assert "no Kubernetes cluster is configured" in kube["error"]


class FakeApiServer(BaseHTTPRequestHandler):
    """Answers the two requests the probe makes, and counts them."""

    requests: list[str] = []

    def do_GET(self) -> None:
        FakeApiServer.requests.append(self.path)
        if self.path == "/version":
            body: Any = {"major": "1", "minor": "31+"}
        elif self.path.startswith("/api/v1/nodes"):
            gpus = [{"nvidia.com/gpu": "2"}, {"nvidia.com/gpu": "1"}, {}]
            body = {"kind": "NodeList", "items": [{"status": {"allocatable": g}} for g in gpus]}
        else:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def kubeconfig(path: Path, port: int) -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "me", "user": {"token": "t0ken"}}],
                "contexts": [{"name": "lab", "context": {"cluster": "fake", "user": "me", "namespace": NS}}],
                "current-context": "lab",
            }
        )
    )
    return path


@pytest.fixture
def fake_cluster(tmp_path: Path, monkeypatch: Any) -> Iterator[list[str]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApiServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeApiServer.requests = []
    path = kubeconfig(tmp_path / "kubeconfig", server.server_address[1])
    monkeypatch.setenv("WORKBENCH_KUBERNETES__KUBECONFIG", str(path))
    yield FakeApiServer.requests
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("before_server", [("fake_cluster",)], indirect=True)
async def test_backends_with_a_cluster_counts_its_gpus_and_caches_the_answer(
    api: Api, fake_cluster: list[str]
) -> None:
    reply = await api("GET", "backends")
    assert reply.code == 200
    kube = reply.json["backends"]["kubernetes"]
    assert kube == {
        "available": True,
        "context": None,  # the kubeconfig's current one
        "namespace": NS,
        "version": "1.31",
        "gpus": 3,
        "error": None,
    }
    asked = len(fake_cluster)
    assert asked == 2
    again = await api("GET", "backends")
    assert again.json == reply.json
    assert len(fake_cluster) == asked  # answered from the cache


@pytest.fixture
def silent_cluster(tmp_path: Path, monkeypatch: Any) -> Iterator[None]:
    """An API server that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    path = kubeconfig(tmp_path / "kubeconfig", sock.getsockname()[1])
    monkeypatch.setenv("WORKBENCH_KUBERNETES__KUBECONFIG", str(path))
    yield
    sock.close()


@pytest.mark.parametrize("before_server", [("silent_cluster",)], indirect=True)
@pytest.mark.parametrize("workbench_config", [{"probe_timeout": 0.3}])
async def test_a_silent_cluster_does_not_hold_the_answer(api: Api, silent_cluster: None) -> None:
    reply = await api("GET", "backends", request_timeout=10)
    assert reply.code == 200
    kube = reply.json["backends"]["kubernetes"]
    assert kube["available"] is False and kube["error"]
    assert reply.json["backends"]["local"]["available"] is True
    # the server keeps answering meanwhile
    assert (await api("GET", "workloads")).code == 200
