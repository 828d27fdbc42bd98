"""The hot path of a local endpoint: a raw ASGI app that forwards each request to a ready replica.

No framework: the app reads the request body once (refusing it with 413 past the limit), picks a
revision by its traffic weight (smooth weighted round robin, so a 20 % canary gets exactly one
request in five) and, within it, the replica with the fewest requests in flight, and forwards
method, path, query, headers and body through one shared :class:`aiohttp.ClientSession` (pooled
keep-alive connections). The answer goes back as the replica gave it, plus the header
``x-workbench-revision``. A request that no replica answered (refused, or its pooled connection
closed before the answer) is sent once more to the next pick, then gets 502; no ready replica
gives 503. Nothing is logged per request. The controller (:mod:`.serve_control`) owns which
replicas are routable; it changes :class:`Pool` in place.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from .serve_processes import Replica

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Headers that belong to one connection and never travel through a proxy (RFC 9110 7.6.1),
#: plus the ones the proxy itself sets for the body it sends.
_HOP = frozenset(
    b"connection keep-alive proxy-connection proxy-authenticate proxy-authorization te trailer "
    b"transfer-encoding upgrade content-length host expect".split()
)
#: Answers up to this size are read at once; larger (or unsized) ones are streamed through.
_READ_ONCE = 4 * 2**20
REVISION_HEADER = b"x-workbench-revision"
_IDENTITY = ("Accept-Encoding", "identity")
#: How much of a refused body is still read before the 413; past it the connection closes.
_DRAIN_LIMIT = 64 * 2**20


@dataclass(eq=False)
class _Route:
    revision: int
    weight: int
    replicas: list[Replica]  # shared with the controller: it adds and removes ready replicas
    current: int = 0


class Pool:
    """The routing table: revisions with their traffic weights and their ready replicas."""

    def __init__(self) -> None:
        self._routes: list[_Route] = []
        self.requests = 0  # requests forwarded since start (the controller derives the rate)

    def set_routes(self, routes: list[tuple[int, int, list[Replica]]]) -> None:
        """Replace the table: (revision, weight in percent, its live list of ready replicas)."""
        old = {route.revision: route for route in self._routes}
        new = []
        for revision, weight, replicas in routes:
            route = _Route(revision, weight, replicas)
            if revision in old:
                route.current = old[revision].current
            new.append(route)
        self._routes = new

    def pick(self) -> Replica | None:
        """The replica for the next request, or None when no revision with traffic has one."""
        best: _Route | None = None
        total = 0
        for route in self._routes:
            if route.weight <= 0 or not route.replicas:
                continue
            route.current += route.weight
            total += route.weight
            if best is None or route.current > best.current:
                best = route
        if best is None:
            return None
        best.current -= total
        replicas = best.replicas
        if len(replicas) == 1:
            return replicas[0]
        chosen = replicas[0]
        for replica in replicas:
            if replica.inflight < chosen.inflight:
                chosen = replica
        if chosen is replicas[0]:  # ties rotate, so idle replicas share the load
            replicas.append(replicas.pop(0))
        return chosen

    def inflight(self, revision: int | None = None) -> int:
        return sum(
            r.inflight
            for route in self._routes
            if revision is None or route.revision == revision
            for r in route.replicas
        )


def _json_answer(status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None) -> list[Message]:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return [
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])},
        {"type": "http.response.body", "body": body},
    ]


class ProxyApp:
    """The ASGI application of the endpoint."""

    def __init__(self, pool: Pool, max_body: int, model_name: str) -> None:
        self.pool = pool
        self.max_body = max_body
        self.model_name = model_name
        self.session: aiohttp.ClientSession | None = None

    def open(self) -> None:
        """Create the shared client session; call inside the running event loop."""
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30, ttl_dns_cache=None)
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1003})
            return
        headers: list[tuple[str, str]] = []
        length = -1
        encodings = False
        for key, value in scope["headers"]:
            if key in _HOP:
                if key == b"content-length":
                    length = int(value) if value.isdigit() else -1
                continue
            if key == b"accept-encoding":
                encodings = True
            headers.append((key.decode("latin-1"), value.decode("latin-1")))
        if not encodings:  # else aiohttp asks for gzip, which this client did not
            headers.append(_IDENTITY)
        limit = self.max_body
        try:
            body, complete = (None, False) if length > limit else await _read_body(receive, limit)
        except _Gone:
            return
        if body is None:
            # what the client still sends is read and dropped (up to a point), or it could meet
            # a closed connection before it reads the answer
            drained = complete or (length <= _DRAIN_LIMIT and await _discard(receive, _DRAIN_LIMIT))
            message = f"request body is larger than the limit of {limit} bytes"
            await _answer(send, 413, message, close=not drained)
            return
        query = scope["query_string"]
        target = scope["raw_path"].decode("latin-1") if scope.get("raw_path") else scope["path"]
        if query:
            target = f"{target}?{query.decode('latin-1')}"
        method = scope["method"]
        for attempt in (0, 1):
            replica = self.pool.pick()
            if replica is None:
                await _answer(send, 503, f"no ready replica of model {self.model_name!r} yet")
                return
            try:
                await self._forward(replica, method, target, headers, body, send)
                return
            except _NotSent as exc:  # the replica never answered: one retry on another pick
                if attempt:
                    await _answer(send, 502, f"replica {replica.name} did not answer: {exc.reason}")
            except (TimeoutError, aiohttp.ClientError, OSError):
                return  # the answer had started: the client sees the connection end

    async def _forward(
        self,
        replica: Replica,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        send: Send,
    ) -> None:
        assert self.session is not None
        self.pool.requests += 1
        replica.inflight += 1
        started = False
        try:
            try:
                resp = await self.session.request(
                    method,
                    URL(replica.base + target, encoded=True),
                    headers=headers,
                    data=body or None,
                    allow_redirects=False,
                )
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                raise _NotSent(str(exc) or type(exc).__name__) from None
            async with resp:
                out = [(k, v) for k, v in resp.raw_headers if k.lower() not in _HOP]
                out.append((REVISION_HEADER, replica.header))
                size = resp.content_length
                if size is not None and size <= _READ_ONCE:
                    data = await resp.read()
                    out.append((b"content-length", str(size if method == "HEAD" else len(data)).encode()))
                    started = True
                    await send({"type": "http.response.start", "status": resp.status, "headers": out})
                    await send({"type": "http.response.body", "body": data})
                    return
                if size is not None:
                    out.append((b"content-length", str(size).encode()))
                started = True
                await send({"type": "http.response.start", "status": resp.status, "headers": out})
                async for chunk in resp.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
        except _NotSent:
            raise
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            if not started:
                raise _NotSent(str(exc) or type(exc).__name__) from None
            raise
        finally:
            replica.inflight -= 1


class _Gone(Exception):
    """The client disconnected before its request was complete."""


class _NotSent(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def _read_body(receive: Receive, limit: int) -> tuple[bytes | None, bool]:
    """The whole request body, or None once it passes ``limit`` bytes; and whether it all came.

    Raises _Gone when the client leaves before its body is complete (nothing is forwarded then).
    """
    message = await receive()
    if message["type"] != "http.request":
        raise _Gone
    body: bytes = message.get("body", b"")
    more = message.get("more_body", False)
    if not more:
        return (body if len(body) <= limit else None), True
    parts = [body]
    size = len(body)
    while more:
        message = await receive()
        if message["type"] != "http.request":
            raise _Gone
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        size += len(chunk)
        if size > limit:
            return None, not more
        parts.append(chunk)
    return b"".join(parts), True


async def _discard(receive: Receive, limit: int) -> bool:
    """Read the rest of a refused body; False when it passes ``limit`` or the client left."""
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return False
        size += len(message.get("body", b""))
        if size > limit:
            return False
        if not message.get("more_body", False):
            return True


async def _answer(send: Send, status: int, message: str, close: bool = False) -> None:
    extra = [(b"connection", b"close")] if close else None
    for part in _json_answer(status, message, extra):
        await send(part)
