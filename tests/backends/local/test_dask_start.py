"""How a local Dask cluster starts quickly and still keeps its promises: the dashboard is attached
once the scheduler is up (its link works from the start), and the workers' warm server, started
before the cluster process imports distributed, follows the Dask config. Real clusters."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from workbench.runtime import dask_dashboard, procs
from workbench.runtime.dask_workers import worker_environ
from workbench.service import Service


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as answer:  # follows redirects
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_dashboard_link_works_as_soon_as_the_cluster_is_recorded(service: Service) -> None:
    workload = service.launch({"kind": "dask", "workers": 1, "name": "dash-early"})
    record = service.dask_address(workload.id)  # at once: the dashboard may still be loading
    url = record.info["dashboard"]
    assert url.startswith("http://127.0.0.1:") and url.endswith("/status")
    assert record.info["dashboard_path"] == f"proxy/{record.info['dashboard_port']}/status"
    code, body = fetch(url)
    assert code == 200
    assert b"Dask" in body and b"bokeh" in body.lower()
    base = url.removesuffix("status")
    # the scheduler's proxy to worker dashboards (jupyter-server-proxy), added with the dashboard:
    # it answers for an unknown worker instead of the server not knowing the route at all
    code, body = fetch(f"{base}proxy/1/127.0.0.1/status")
    assert code == 400 and b"does not exist" in body
    assert fetch(f"{base}no-such-page")[0] == 404  # once attached, unknown pages are not held


def ask_held(path: str, set_after: float | None) -> tuple[int, str, str, str]:
    """Ask the held-requests app for ``path`` while the dashboard loads: it is ready after
    ``set_after`` seconds. The dashboard here answers with the path it was asked for."""
    from tornado import web
    from tornado.httpclient import AsyncHTTPClient
    from tornado.httpserver import HTTPServer
    from tornado.testing import bind_unused_port

    class Page(web.RequestHandler):
        def get(self) -> None:
            self.set_header("X-Page", "dashboard")
            self.write(f"page {self.request.uri}")

    async def run() -> tuple[int, str, str, str]:
        ready = asyncio.Event()
        dashboard_socket, dashboard_port = bind_unused_port()
        dashboard = HTTPServer(
            web.Application([(r"/", web.RedirectHandler, {"url": "status"}), (r".+", Page)])
        )
        dashboard.add_sockets([dashboard_socket])
        held_socket, held_port = bind_unused_port()
        held = HTTPServer(dask_dashboard.pending(ready, dashboard_port))
        held.add_sockets([held_socket])
        if set_after is not None:
            asyncio.get_running_loop().call_later(set_after, ready.set)
        try:
            answer = await AsyncHTTPClient().fetch(
                f"http://127.0.0.1:{held_port}{path}", follow_redirects=False, raise_error=False
            )
        finally:
            held.stop()
            dashboard.stop()
        body = answer.body.decode() if answer.body else ""
        return answer.code, body, answer.headers.get("X-Page", ""), answer.headers.get("Location", "")

    return asyncio.run(run())


@pytest.mark.parametrize("path", ["/status", "/status?a=1", "/individual-plots/x"])
def test_a_request_made_while_the_dashboard_loads_waits_and_gets_the_page(path: str) -> None:
    # answered by the dashboard itself once it is there: no redirect for a client to follow
    assert ask_held(path, set_after=0.2) == (200, f"page {path}", "dashboard", "")


def test_the_dashboards_own_redirects_come_back_as_they_are() -> None:
    assert ask_held("/", set_after=0.1) == (301, "", "", "status")


def test_a_dashboard_that_never_loads_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dask_dashboard, "WAIT", 0.2)
    assert ask_held("/status", set_after=None)[0] == 503


def test_a_workers_environment_is_the_nannys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    assert worker_environ({"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "UNSET": None}) == {
        "OMP_NUM_THREADS": "7",  # the process's own value wins, as distributed's nanny has it
        "MKL_NUM_THREADS": "1",
        "PYTHONHASHSEED": "6640",
    }
    monkeypatch.setenv("PYTHONHASHSEED", "12")
    assert worker_environ({})["PYTHONHASHSEED"] == "6640"  # a seed of its own only when configured
    assert worker_environ({"PYTHONHASHSEED": 5})["PYTHONHASHSEED"] == "12"


def environ_probe() -> tuple[int, dict[str, str | None], str | None]:
    """A worker's parent, what the parent was started with (a nanny also sets the variables in
    each worker, but after the server imported numpy: what counts is the server's own start),
    and the worker's own ``OMP_NUM_THREADS``."""
    import os

    parent = os.getppid()
    with open(f"/proc/{parent}/environ", "rb") as fh:
        started = dict(item.decode().partition("=")[::2] for item in fh.read().split(b"\0") if item)
    names = ("OMP_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_", "PYTHONHASHSEED")
    return parent, {name: started.get(name) for name in names}, os.environ.get("OMP_NUM_THREADS")


def test_a_configured_worker_environment_reaches_the_workers_server(
    service: Service, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "dask-config"
    config.mkdir()
    (config / "workers.yaml").write_text(
        "distributed:\n  nanny:\n    pre-spawn-environ:\n      OMP_NUM_THREADS: 3\n"
    )
    monkeypatch.setenv("DASK_CONFIG", str(config))  # the cluster process reads the user's config
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    workload = service.launch({"kind": "dask", "workers": 2, "name": "configured"})
    client: Any = service.dask_client(workload.id)
    try:
        found = list(client.run(environ_probe).values())
    finally:
        client.close()
    assert len(found) == 2
    assert [env for _, env, _ in found] == [
        {"OMP_NUM_THREADS": "3", "MALLOC_TRIM_THRESHOLD_": "65536", "PYTHONHASHSEED": "6640"}
    ] * 2
    assert [own for _, _, own in found] == ["3", "3"]  # not the default the backend started it with
    # the cluster process started with distributed's defaults, not the user's: a fresh server,
    # still one warm server for both
    (parent,) = {parent for parent, _, _ in found}
    assert b"multiprocessing.forkserver" in procs.cmdline(parent)
