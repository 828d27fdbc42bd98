"""One replica of a ``serve`` workload: KServe's REST model server for one revision's model.

``python -m workbench.runtime.serve_replica REVISION_DIR [--host H] [--port P]`` loads the
model of the payload folder ``REVISION_DIR`` (see :mod:`.serve_model`; model name, model URI
and body limit come from its ``meta.json``) and serves it with KServe's own handlers: the Open
Inference Protocol v2 (``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/{name}``,
``/v2/models/{name}/ready``, ``/v2/models/{name}/infer``) and KServe V1
(``/v1/models/{name}:predict``), over REST only (no gRPC), one worker. ``--host`` defaults to
``$WORKBENCH_BIND_HOST`` (on Kubernetes the pod's IP) else ``0.0.0.0``; ``--port`` to 8080.

KServe's ``ModelServer`` binds every address and takes no ASGI middleware, so the app is put
together here from its parts, the way ``ModelServer.start`` does it: a ``ModelRepository``,
a ``DataPlane`` and ``RESTServer.create_application`` (routes, timing middleware, error
handlers) on ``kserve.model_server.app``, run by uvicorn with KServe's keep-alive and grace
period. Added around it: bodies over ``max_body`` get 413; request errors that KServe leaves
to FastAPI's defaults or to a 500 (a body that is not JSON, a tensor whose data does not fill
its shape, an unknown datatype or path) get a 4xx with ``{"error": "..."}`` like its own.

A model that fails to load leaves its error as the last line of stderr and exit code 3.
SIGTERM stops accepting connections, lets in-flight requests finish (at most 30 s), exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import logging
import math
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .serve_model import LoadError, import_kserve, load_model

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Exit code of a replica whose model did not load (its last stderr line says why).
LOAD_FAILED_EXIT = 3
DEFAULT_PORT = 8080
#: Environment variable with the address to bind (Kubernetes: the pod IP, by the downward API).
HOST_ENV = "WORKBENCH_BIND_HOST"
DEFAULT_MAX_BODY = 16 * 2**20
#: KServe's defaults: keep-alive longer than a proxy's idle timeout, 30 s to finish requests.
KEEP_ALIVE_SECONDS = 65
GRACE_SECONDS = 30
#: How much of a refused body is still read (and dropped) before answering 413: a client that
#: is still sending when the connection closes gets a broken pipe instead of the answer.
_DRAIN_LIMIT = 64 * 2**20


class BodyLimit:
    """ASGI middleware: a request body over ``max_body`` bytes gets 413 and a JSON error.

    A declared ``Content-Length`` is checked before anything is read (the server reads no
    more than it declares); a chunked body is read here, counting, and handed on whole.
    """

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None:
            if length > self.max_body:
                # a client waiting for "100 Continue" has sent nothing yet: answer it at once
                waiting = (_header(scope, b"expect") or b"").lower() == b"100-continue"
                await self._refuse(receive, send, drain=length <= _DRAIN_LIMIT and not waiting)
            else:
                await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before its body ended: no one to answer
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            more = bool(message.get("more_body", False))
            if size > self.max_body:
                await self._refuse(receive, send, drain=more)
                return
            chunks.append(chunk)
            if not more:
                break
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        async def replay() -> Message:
            nonlocal whole
            if whole:
                message, whole = whole, {}
                return message
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, receive: Receive, send: Send, *, drain: bool) -> None:
        drained = 0
        while drain and drained <= _DRAIN_LIMIT:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
            drained += len(message.get("body", b""))
        body = json.dumps(
            {"error": f"request body larger than {self.max_body} bytes (the endpoint's max body size)"}
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def build_app(model: Any, max_body: int) -> BodyLimit:
    """KServe's REST application serving ``model``, behind the body limit. Once per process."""
    import_kserve()
    from fastapi.exceptions import RequestValidationError
    from kserve import context
    from kserve.errors import InvalidInput, ModelNotFound
    from kserve.model_repository import ModelRepository
    from kserve.model_server import app
    from kserve.predictor_config import PredictorConfig
    from kserve.protocol.model_repository_extension import (
        ModelRepositoryExtension,
    )
    from kserve.protocol.rest.server import RESTServer
    from starlette.exceptions import HTTPException

    repository = ModelRepository()
    repository.update(model)
    # as ModelServer does: no predictor host (this is a predictor, not a transformer), protocol v1
    context.set_predictor_config(PredictorConfig(predictor_host=None))
    dataplane = _checked_dataplane_class()(model_registry=repository)
    extension = ModelRepositoryExtension(model_registry=repository)
    RESTServer("kserve.model_server:app", dataplane, extension, http_port=0).create_application()
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)
    # KServe's own handlers for these log a traceback per bad request; same answers, no traceback
    app.add_exception_handler(InvalidInput, functools.partial(_client_error, 400))
    app.add_exception_handler(ModelNotFound, functools.partial(_client_error, 404))
    # kserve answers with ORJSONResponse, which this FastAPI deprecates: one warning, no news
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")
    return BodyLimit(_LoggedOnce(app), max_body)


class _LoggedOnce:
    """Keeps an error that KServe's handler logged and answered (500) from being logged again.

    Starlette re-raises an exception after its handler answered, for the server to log; with
    KServe's handler having logged it already, every failing predict would print two tracebacks.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with contextlib.suppress(Exception):  # logged by kserve's generic handler, which also answered
            await self.app(scope, receive, send)


async def _client_error(status: int, _request: Request, exc: Exception) -> Response:
    from starlette.responses import JSONResponse

    return JSONResponse({"error": str(exc)}, status_code=status)


async def _invalid_request(_request: Request, exc: Exception) -> Response:
    """A body FastAPI could not parse into KServe's request model (not JSON, fields missing)."""
    from starlette.responses import JSONResponse

    errors: list[dict[str, Any]] = list(getattr(exc, "errors", list)())[:3]
    found = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg', '')}" for e in errors)
    return JSONResponse({"error": f"invalid request: {found or exc}"}, status_code=400)


async def _http_error(_request: Request, exc: Exception) -> Response:
    """An unknown path or method: KServe's error body instead of FastAPI's ``{"detail": ...}``."""
    from starlette.responses import JSONResponse

    status = int(getattr(exc, "status_code", 500))
    detail = getattr(exc, "detail", None) or str(exc)
    return JSONResponse({"error": str(detail)}, status_code=status, headers=getattr(exc, "headers", None))


@functools.cache
def _checked_dataplane_class() -> type[Any]:
    """KServe's DataPlane, checking the tensors of a V2 request before any model sees them.

    KServe decodes a tensor's data only when the model asks for it (``InferInput.as_numpy``),
    so data that does not fill its shape becomes a 500 from inside the model; and errors in
    decoding a binary request surface as 500s too. Both are the client's: 400 here.
    """
    from kserve.errors import InvalidInput
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.infer_type import InferRequest
    from kserve.utils.numpy_codec import to_np_dtype

    def check(request: Any) -> None:
        for tensor in request.inputs:
            if to_np_dtype(tensor.datatype) is None:
                raise InvalidInput(
                    f"input {tensor.name!r}: unknown datatype {tensor.datatype!r} "
                    "(BOOL, INT8..INT64, UINT8..UINT64, FP16, FP32, FP64 or BYTES)"
                )
            shape = list(tensor.shape)
            if not all(isinstance(size, int) and size >= 0 for size in shape):
                raise InvalidInput(f"input {tensor.name!r}: shape {shape} is not a list of sizes >= 0")
            data = tensor.data
            if isinstance(data, list) and _count(data) != math.prod(shape):
                raise InvalidInput(
                    f"input {tensor.name!r}: {_count(data)} values do not fill shape {shape} "
                    f"({math.prod(shape)} values)"
                )

    class CheckedDataPlane(DataPlane):  # type: ignore[misc]
        def decode(self, *args: Any, **kwargs: Any) -> Any:
            try:
                decoded, attributes = super().decode(*args, **kwargs)
            except InvalidInput:
                raise
            except (KeyError, ValueError, TypeError) as exc:  # a binary request kserve could not take apart
                raise InvalidInput(f"invalid request: {type(exc).__name__}: {exc}") from None
            if isinstance(decoded, InferRequest):
                check(decoded)
            return decoded, attributes

    return CheckedDataPlane


def _count(data: list[Any]) -> int:
    """How many values a tensor's (flat or nested) data list holds."""
    if data and isinstance(data[0], list):
        return sum(_count(item) if isinstance(item, list) else 1 for item in data)
    return len(data)


def _configure_logging() -> None:
    from kserve.logging import configure_logging

    configure_logging()  # kserve's format for its own and uvicorn's lines, on stderr
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)  # else a timing line per request


def _stop_loading(signum: int, _frame: object) -> None:
    """SIGTERM before the server runs: leave now (as process 1 in a pod, it would be ignored)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(128 + signum)


def _stopped(_signum: int, _frame: object) -> None:
    """Uvicorn raises the signal that stopped it again once it has: the replica is done then."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workbench.runtime.serve_replica",
        description="Serve the model of one revision's payload folder (KServe REST, v1 and v2).",
    )
    parser.add_argument("revision_dir", type=Path)
    parser.add_argument("--host", default=os.environ.get(HOST_ENV) or "0.0.0.0")  # noqa: S104 - a pod's port
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_loading)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # the code's prints reach the log as they happen
    payload: Path = args.revision_dir
    try:
        try:
            meta: dict[str, Any] = json.loads((payload / "meta.json").read_text())
        except (OSError, ValueError) as exc:
            raise LoadError(f"{payload}: cannot read meta.json: {exc}") from None
        import_kserve()
        _configure_logging()
        model = load_model(payload, meta)
    except LoadError as exc:
        if not exc.printed:
            print(f"workbench: {exc}", file=sys.stderr)
        return LOAD_FAILED_EXIT
    import uvicorn

    app = build_app(model, int(meta.get("max_body") or DEFAULT_MAX_BODY))
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_config=None,  # kserve's logging, set above
        access_log=False,  # a line per request would cost more than the request
        lifespan="off",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=GRACE_SECONDS,
    )
    server = uvicorn.Server(config)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stopped)
    server.run()
    model.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
