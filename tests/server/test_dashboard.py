"""The Dask dashboard of a local cluster, reached through the Jupyter server (jupyter-server-proxy)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from tornado.httpclient import HTTPResponse

from .conftest import Api, wait_until


@pytest.fixture
def server_config() -> dict[str, Any]:
    return {"jpserver_extensions": {"workbench.server": True, "jupyter_server_proxy": True}}


async def test_dashboard_through_the_server(
    api: Api, jp_fetch: Callable[..., Awaitable[HTTPResponse]]
) -> None:
    created = await api("POST", "workloads", body={"kind": "dask", "workers": 1, "name": "dash"})
    assert created.code == 201, created.body
    record = await wait_until(api, "dash", ("running",))
    for _ in range(200):  # the address and dashboard are published once the scheduler listens
        if record["info"].get("dashboard_path"):
            break
        await asyncio.sleep(0.1)
        record = (await api("GET", "workloads", "dash")).json
    path = record["info"]["dashboard_path"]
    assert path.startswith("proxy/") and path.endswith("/status")
    page = await jp_fetch(*path.split("/"), method="GET", raise_error=False, follow_redirects=True)
    assert page.code == 200, page.body[:300]
    assert b"Dask" in page.body and b"bokeh" in page.body.lower()
    assert (await api("DELETE", "workloads", "dash", params={"force": "true"})).code == 204
