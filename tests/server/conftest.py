"""A real Jupyter server with the workbench extension, and a small client for its REST API."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from jupyter_server.serverapp import ServerApp

# pytest-jupyter's server fixtures and its async-test hooks, for this directory only
# (pytest refuses ``pytest_plugins`` in a conftest below the top level).
from pytest_jupyter.jupyter_server import *  # noqa: F403
from tornado.httpclient import HTTPResponse
from traitlets.config import Config

from workbench.server.app import WorkbenchApp
from workbench.service import Service

FINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture(autouse=True)
def _no_outer_kubeconfig(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)


@pytest.fixture
def workbench_config() -> dict[str, Any]:
    """WorkbenchApp traits for one test (parametrize this fixture to change them)."""
    return {}


@pytest.fixture
def server_config() -> dict[str, Any]:
    """Extra ServerApp traits for one test (parametrize this fixture to change them)."""
    return {}


@pytest.fixture
def jp_server_config(workbench_config: dict[str, Any], server_config: dict[str, Any]) -> Config:
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"workbench.server": True},
                "reraise_server_extension_failures": True,
                **server_config,
            },
            "WorkbenchApp": {"poll_interval": 0.05, "refresh_interval": 0.5, **workbench_config},
        }
    )


@pytest.fixture
def before_server(request: pytest.FixtureRequest, service: Service) -> None:
    """Runs the fixtures a test names before the server starts (it reads the settings once, then).

    After ``service``, which cleans up after the test with the settings from before.

    Use ``@pytest.mark.parametrize("before_server", [("fixture", ...)], indirect=True)``.
    """
    for name in getattr(request, "param", ()):
        request.getfixturevalue(name)


@pytest.fixture
def wb_server(
    before_server: None,
    jp_serverapp: ServerApp,
    jp_asyncio_loop: asyncio.AbstractEventLoop,
    service: Service,
) -> ServerApp:
    """The server with its extensions started, as `jupyter server` does once its loop runs.

    Depends on ``service`` so whatever a test leaves running is cancelled afterwards.
    """
    jp_asyncio_loop.run_until_complete(jp_serverapp.extension_manager.start_all_extensions())
    return jp_serverapp


def workbench_app(server: ServerApp) -> WorkbenchApp:
    (app,) = server.extension_manager.extension_apps["workbench.server"]
    assert isinstance(app, WorkbenchApp)
    return app


@dataclass
class Reply:
    code: int
    headers: Any
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


Api = Callable[..., Awaitable[Reply]]


@pytest.fixture
def api(wb_server: ServerApp, jp_fetch: Callable[..., Awaitable[HTTPResponse]]) -> Api:
    """``await api("GET", "workloads", name, params=..., body=...)`` → Reply; errors are replies too."""

    async def call(method: str, *parts: str, body: Any = None, **kwargs: Any) -> Reply:
        if body is not None and not isinstance(body, (str, bytes)):
            body = json.dumps(body)
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = ""
        response = await jp_fetch(
            "workbench", "api", *parts, method=method, body=body, raise_error=False, **kwargs
        )
        return Reply(response.code, response.headers, response.body or b"")

    return call


async def wait_until(api: Api, name: str, statuses: tuple[str, ...] = FINAL, timeout: float = 30) -> Any:
    """Poll GET workloads/NAME until its status is one of ``statuses``; the record."""
    deadline = time.monotonic() + timeout
    while True:
        reply = await api("GET", "workloads", name)
        assert reply.code == 200, reply.body
        if reply.json["status"] in statuses:
            return reply.json
        assert time.monotonic() < deadline, f"{name} still {reply.json['status']}"
        await asyncio.sleep(0.05)
