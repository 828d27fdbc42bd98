"""The API server's service proxy.

``/api/v1/namespaces/{ns}/services/{[scheme:]name[:port]}/proxy[/{path}]`` (port by number
or by name; no port: the Service's only port, or its unnamed one) forwards the request —
method, path, query, body, headers without the hop-by-hop ones, ``Host`` and
``Authorization`` — to one ready address of the Service's Endpoints, chosen at random, on
the port the Endpoints give for that Service port (the resolved targetPort), and answers with
the pod's status, headers and body. Errors are Status objects as the real server words them:
404 for an unknown Service, 503 ``no endpoints available for service "W"`` when no address is
ready, 503 ``error trying to reach service`` when the pod refuses the connection. RBAC is
checked as ``services/proxy`` (get for GET/HEAD/OPTIONS, create for POST, update for PUT…).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from yarl import URL

from .errors import ApiError, bad_request, forbidden, not_found

if TYPE_CHECKING:
    from .emulator import Emulator

PROXY_PATH = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/services/(?P<id>[^/]+)/proxy(?P<rest>/.*)?$")
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
}
NOT_FORWARDED = HOP_BY_HOP | {"host", "authorization", "content-length"}
VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def _unavailable(message: str) -> ApiError:
    return ApiError(503, "ServiceUnavailable", message)


def _headers(headers: Mapping[str, str], drop: set[str]) -> dict[str, str]:
    """The headers less ``drop`` and those the Connection header names."""
    named = {v.strip().lower() for k, v in headers.items() if k.lower() == "connection" for v in v.split(",")}
    return {k: v for k, v in headers.items() if k.lower() not in drop and k.lower() not in named}


def _sniff(payload: bytes) -> str:
    try:
        payload[:512].decode()
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


class ServiceProxy:
    def __init__(self, emulator: Emulator) -> None:
        self.em = emulator
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # idle connections are dropped before a server's usual keep-alive timeout (5 s) ends
            connector = aiohttp.TCPConnector(keepalive_timeout=3)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def resolve(self, namespace: str, ident: str) -> tuple[str, str, int]:
        """(scheme, pod IP, port) of a ready endpoint for ``[scheme:]name[:port]``."""
        parts = ident.split(":")
        if len(parts) > 3:
            raise bad_request(f"invalid service request {ident!r}")
        scheme, name, port = (
            ("", parts[0], "") if len(parts) == 1 else ("", *parts) if len(parts) == 2 else parts
        )
        if scheme not in ("", "http", "https"):
            raise bad_request(f"invalid scheme {scheme!r} in {ident!r}")
        svc = self.em.store.get(("", "services"), namespace, name)
        if svc is None:
            raise not_found("services", "", name)
        ports = (svc.get("spec") or {}).get("ports") or []
        if not port:
            chosen = ports if len(ports) == 1 else [p for p in ports if not p.get("name")]
        elif port.isdigit():
            chosen = [p for p in ports if int(p.get("port", 0)) == int(port)]
        else:
            chosen = [p for p in ports if p.get("name") == port]
        if not chosen:
            raise _unavailable(f'no service port "{port}" found for service "{name}"')
        wanted = chosen[0].get("name") or ""
        endpoints = self.em.store.get(("", "endpoints"), namespace, name) or {}
        targets = [
            (address["ip"], int(item["port"]))
            for subset in endpoints.get("subsets") or []
            for item in subset.get("ports") or []
            if (item.get("name") or "") == wanted
            for address in subset.get("addresses") or []
        ]
        if not targets:
            raise _unavailable(f'no endpoints available for service "{name}"')
        ip, target = random.choice(targets)
        return scheme or "http", ip, target

    async def handle(self, request: web.Request, match: re.Match[str]) -> web.StreamResponse:
        namespace, ident = match["ns"], match["id"]
        verb = VERBS.get(request.method, "get")
        if self.em.is_denied(verb, "", "services/proxy"):
            name = ident.split(":")[1] if ident.count(":") == 2 else ident.split(":")[0]
            raise forbidden(self.em.user, verb, "services/proxy", "", namespace, name)
        scheme, ip, port = self.resolve(namespace, ident)
        raw = PROXY_PATH.match(request.rel_url.raw_path)
        rest = (raw["rest"] if raw else None) or "/"
        query = request.rel_url.raw_query_string
        url = URL(f"{scheme}://{ip}:{port}{rest}" + (f"?{query}" if query else ""), encoded=True)
        body = await request.read()
        headers = _headers(request.headers, NOT_FORWARDED)
        for attempt in (1, 2):
            try:
                return await self._forward(request.method, url, headers, body)
            except aiohttp.ServerDisconnectedError as exc:  # a kept-alive connection the pod closed
                if attempt == 2:
                    raise _unavailable(f"error trying to reach service: {exc}") from None
            except (aiohttp.ClientError, OSError) as exc:
                raise _unavailable(f"error trying to reach service: {exc}") from None
        raise AssertionError("unreachable")

    async def _forward(self, method: str, url: URL, headers: dict[str, str], body: bytes) -> web.Response:
        async with self.session().request(
            method, url, headers=headers, data=body or None, allow_redirects=False, ssl=False
        ) as answer:
            payload = await answer.read()
            out = _headers(answer.headers, HOP_BY_HOP | {"content-length"})
            if "Content-Type" not in answer.headers and payload:
                out["Content-Type"] = _sniff(payload)  # what Go's ResponseWriter adds
            return web.Response(status=answer.status, body=payload, headers=out)
