"""The running endpoint: uvicorn serving the proxy, the controller and the status writer in one loop.

Started by :mod:`.serve_router` once the first replicas are on their way.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import uvicorn

from .serve_control import Controller
from .serve_processes import ReplicaProcess, say
from .serve_proxy import Pool, ProxyApp
from .serve_status import StatusWriter

#: Seconds uvicorn gives in-flight requests after SIGTERM; then the replicas get SIGTERM, and
#: SIGKILL after REPLICA_GRACE. Both fit in the supervisor's grace (5 s by default).
DRAIN_GRACE = 2.5
REPLICA_GRACE = 1.5
DEFAULT_MAX_BODY = 16 * 2**20


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the router installs its own on the loop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _http_impl() -> str:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


async def serve(
    run_dir: Path, desired: dict[str, Any], early: dict[int, list[ReplicaProcess]], sock: socket.socket
) -> int:
    """Serve the endpoint on the bound ``sock`` until SIGTERM; the exit status."""
    port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    max_body = int(desired.get("max_body") or DEFAULT_MAX_BODY)
    app = ProxyApp(Pool(), max_body, str(desired.get("model_name") or "model"))
    app.open()
    config = uvicorn.Config(
        app,
        http=_http_impl(),
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
        timeout_keep_alive=30,
        proxy_headers=False,  # the clients are local; X-Forwarded-* pass through untouched
        timeout_graceful_shutdown=int(DRAIN_GRACE + 0.5),
        backlog=2048,
    )
    server = _Server(config)
    controller = Controller(run_dir, app, desired, early)
    writer = StatusWriter(run_dir.name, url)
    loop = asyncio.get_running_loop()

    def stop() -> None:
        say("stopping: no new connections; in-flight requests finish")
        controller.stopping = True  # no replacements, no rollouts from here on
        server.should_exit = True

    controller.on_fatal = lambda: setattr(server, "should_exit", True)
    loop.add_signal_handler(signal.SIGHUP, controller.ask_reload)
    loop.add_signal_handler(signal.SIGTERM, stop)
    loop.add_signal_handler(signal.SIGINT, stop)
    say(f"endpoint {url} (model {app.model_name!r})")
    tasks = [asyncio.create_task(controller.run()), asyncio.create_task(writer.run(controller))]
    try:
        await server.serve(sockets=[sock])
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await controller.shutdown(REPLICA_GRACE)
        await app.close()
        await writer.write({"ready": 0, "rps": 0.0})
        writer.close()
        sock.close()
    say("stopped")
    if controller.fatal:  # the last line of the output: the supervisor records it as the reason
        print(controller.fatal, file=sys.stderr, flush=True)
        return 1
    return 0
