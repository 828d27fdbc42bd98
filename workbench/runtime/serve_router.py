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
import socket
import sys
from pathlib import Path

from .serve_processes import DESIRED, load_desired, prestart


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
        sock = bind(desired.get("port"))
    except OSError as exc:
        print(
            f"serve router: cannot listen on 127.0.0.1:{desired.get('port')}: {exc.strerror}", file=sys.stderr
        )
        return 1
    # the first replicas start now: their start-up overlaps the router's own imports below
    early = prestart(run_dir, desired)
    from .serve_endpoint import serve

    try:
        import uvloop
    except ImportError:
        import asyncio

        return asyncio.run(serve(run_dir, desired, early, sock))
    return uvloop.run(serve(run_dir, desired, early, sock))


def bind(port: int | None) -> socket.socket:
    """The endpoint's listening socket on 127.0.0.1 (a free port when ``port`` is None)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port or 0))
    except OSError:
        sock.close()
        raise
    return sock


if __name__ == "__main__":
    sys.exit(main())
