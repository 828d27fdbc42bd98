"""The Dask dashboard of a local cluster, attached once its scheduler is up.

Importing Bokeh's dashboard and jupyter-server-proxy (for the scheduler's route to worker
dashboards) takes about a second, so the cluster's scheduler starts without them and
:func:`attach` adds them to its running HTTP server, as ``Scheduler.__init__`` would have.
The dashboard's link is published at once: until the dashboard is attached its requests are
held, then answered by the dashboard itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from typing import Any

#: Scheduler HTTP routes whose imports are slow (jupyter-server-proxy): added with the dashboard.
LATE_ROUTES = ("distributed.http.proxy",)
#: Seconds a request made while the dashboard loads waits for it.
WAIT = 30.0
#: Headers that belong to one connection, not to the page (the relay drops them).
_HOP_HEADERS = {"connection", "content-length", "keep-alive", "transfer-encoding", "host", "accept-encoding"}


def relay(url: str, headers: dict[str, str]) -> tuple[int, str, list[tuple[str, str]], bytes]:
    """GET ``url`` as it answers, redirects included (blocking: run it in a thread)."""
    import urllib.error
    import urllib.request

    class AsItIs(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *_: Any) -> None:
            return None

    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - this server's own URL
    try:
        answer: Any = urllib.request.build_opener(AsItIs).open(request, timeout=WAIT)
    except urllib.error.HTTPError as exc:
        answer = exc
    with answer:
        return answer.status, answer.reason, list(answer.headers.items()), answer.read()


def pending(ready: asyncio.Event, port: int) -> Any:
    """An app for the scheduler's HTTP server that holds each request until ``ready``, then has
    the dashboard (on this server's ``port``) answer it: the page comes back, no redirect."""
    from distributed.http.routing import RoutingApplication
    from distributed.http.utils import RequestHandler

    class Held(RequestHandler):
        async def get(self, *_: str) -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), WAIT)
            if not ready.is_set():
                self.send_error(503, reason="the Dask dashboard is still starting")
                return
            url = f"http://127.0.0.1:{port}{self.request.uri}"
            headers = {k: v for k, v in self.request.headers.items() if k.lower() not in _HOP_HEADERS}
            code, reason, answer, body = await asyncio.to_thread(relay, url, headers)
            self.set_status(code, reason or "dashboard")
            for name, value in answer:
                if name.lower() not in _HOP_HEADERS:
                    self.add_header(name, value)
            self.finish(body)

    return RoutingApplication([(r".*", Held)])  # type: ignore[no-untyped-call]


def attach(scheduler: Any, late: list[str]) -> asyncio.Task[None]:
    """Hold the dashboard's requests now, and attach it (with the ``late`` routes) in a task.

    Without bokeh, distributed's own page says what is missing, as it would at start.
    """
    app = scheduler.http_application
    ready = asyncio.Event()
    held = pending(ready, scheduler.http_server.port)
    app.add_application(held)

    def load() -> bool:
        for module in late:
            importlib.import_module(module)
        try:
            importlib.import_module("distributed.dashboard.scheduler")
        except ImportError:
            return False
        return True

    async def run() -> None:
        from distributed.http.utils import get_handlers

        try:
            bokeh = await asyncio.to_thread(load)  # the imports, off the event loop
            modules = [*late, *([] if bokeh else ["distributed.http.scheduler.missing_bokeh"])]
            app.add_handlers(r".*$", get_handlers(server=scheduler, modules=modules, prefix="/"))
            if bokeh:
                from distributed.dashboard.scheduler import connect

                connect(app, scheduler.http_server, scheduler, prefix="/")  # type: ignore[no-untyped-call]
        except Exception:
            import traceback

            traceback.print_exc()  # the cluster runs on without its dashboard
        finally:
            app.applications.remove(held)
            ready.set()

    return asyncio.create_task(run())
