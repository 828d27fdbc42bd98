"""The router of a local ``serve`` endpoint: ``python -m workbench.runtime.serve_router RUN_DIR``.

One process per endpoint, supervised like any local workload. It serves the endpoint on
``127.0.0.1:PORT`` (uvicorn running the raw ASGI proxy of :mod:`.serve_proxy`; PORT from
``desired.json``, a free one when null) and runs the controller of :mod:`.serve_control`, which
keeps the replica processes and the traffic split equal to ``RUN_DIR/desired.json``. The file
is re-read on SIGHUP and whenever it changes (polled every 0.5 s). Status goes into the store
record's info (:mod:`.serve_status`; the workload id is the run directory's name).

SIGTERM (a cancel) stops accepting connections, lets in-flight requests finish, stops the
replicas and exits 0. Exit 2: ``desired.json`` is unreadable; exit 1: the port is taken.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import uvicorn

from .serve_control import DESIRED, Controller, load_desired
from .serve_processes import say
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


def bind(port: int | None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port or 0))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


async def serve(run_dir: Path, desired: dict[str, Any]) -> int:
    try:
        sock = bind(desired.get("port"))
    except OSError as exc:
        print(
            f"serve router: cannot listen on 127.0.0.1:{desired.get('port')}: {exc.strerror}", file=sys.stderr
        )
        return 1
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
        timeout_graceful_shutdown=int(DRAIN_GRACE + 0.5),
        backlog=2048,
    )
    server = _Server(config)
    controller = Controller(run_dir, app, desired)
    writer = StatusWriter(run_dir.name, url)
    loop = asyncio.get_running_loop()

    def stop() -> None:
        say("stopping: no new connections; in-flight requests finish")
        controller.stopping = True  # no replacements, no rollouts from here on
        server.should_exit = True

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
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.runtime.serve_router")
    parser.add_argument("run_dir", type=Path, help="the workload's run directory (holds desired.json)")
    args = parser.parse_args(argv)
    run_dir = args.run_dir.resolve()
    try:
        desired = load_desired(run_dir)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"serve router: cannot read {run_dir / DESIRED}: {exc}", file=sys.stderr)
        return 2
    try:
        import uvloop
    except ImportError:
        return asyncio.run(serve(run_dir, desired))
    return uvloop.run(serve(run_dir, desired))


if __name__ == "__main__":
    sys.exit(main())
