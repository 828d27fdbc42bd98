"""A stand-in replica for the router's tests: ``python -m tests.runtime.fake_replica DIR --host H --port P``.

A raw ASGI app under uvicorn. It answers ``GET /v2/models/{name}/ready`` (200 for the model named
in DIR/meta.json, 404 otherwise) and the v2 health paths; every other request is echoed back as
JSON naming the revision (DIR's name), its pid, method, path, query and body. ``/echo`` sends the
body back as it came; ``/slow?ms=N`` answers after N ms; ``/crash`` exits at once (code 1).

Behaviour from the environment (the router applies a revision's meta.json env):
``FAKE_STARTUP_DELAY`` seconds before it listens; ``FAKE_FAIL`` a message printed to stderr as
the last line before it exits with code 3 (a model whose load() raises).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import uvicorn


def make_app(revision: str, model_name: str) -> Any:
    ready_path = f"/v2/models/{model_name}/ready"

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path, method = scope["path"], scope["method"]
        query = scope["query_string"].decode()
        status, content_type = 200, b"application/json"
        if path in (ready_path, "/v2/health/ready", "/v2/health/live"):
            out = json.dumps({"ready": True}).encode()
        elif path.startswith("/v2/models/") and path.endswith("/ready"):
            status, out = 404, json.dumps({"error": "unknown model"}).encode()
        elif path == "/crash":
            os._exit(1)
        elif path == "/echo":
            out = body
            content_type = dict(scope["headers"]).get(b"content-type", b"application/octet-stream")
        else:
            if path == "/slow":
                await asyncio.sleep(int(parse_qs(query).get("ms", ["100"])[0]) / 1000)
            out = json.dumps(
                {
                    "revision": revision,
                    "pid": os.getpid(),
                    "method": method,
                    "path": path,
                    "query": query,
                    "body": body.decode("utf-8", "replace"),
                    "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
                }
            ).encode()
        headers = [(b"content-type", content_type), (b"content-length", str(len(out)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": out})

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("revision_dir", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    meta = json.loads((args.revision_dir / "meta.json").read_text())
    print(f"fake replica of revision {args.revision_dir.name} starting", flush=True)
    time.sleep(float(os.environ.get("FAKE_STARTUP_DELAY", "0")))
    failure = os.environ.get("FAKE_FAIL")
    if failure:
        print("Traceback (most recent call last):", file=sys.stderr)
        print(failure, file=sys.stderr, flush=True)
        sys.exit(3)
    app = make_app(args.revision_dir.name, meta["model_name"])
    uvicorn.run(
        app, host=args.host, port=args.port, log_level="warning", lifespan="off", timeout_keep_alive=65
    )


if __name__ == "__main__":
    main()
