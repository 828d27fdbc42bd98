"""The HTTP face of the emulator: discovery, resource verbs, watch, pod logs, fault injection."""

from __future__ import annotations

import asyncio
import json
import re
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml
from aiohttp import web

from . import errors, protobuf, scale, tables
from .discovery import NOT_FOUND, access_review, discovery
from .errors import ApiError, bad_request
from .logs import serve_log
from .proxy import PROXY_PATH
from .resources import ResourceType
from .selectors import parse_field_selector, parse_label_selector
from .store import Event, Obj, Watcher

if TYPE_CHECKING:
    from .emulator import Emulator

_NAME_SELECTOR = "metadata.name="


@dataclass
class Target:
    rt: ResourceType
    namespace: str | None  # None: all namespaces (or cluster-scoped)
    name: str | None
    subresource: str | None
    verb: str


def _truthy(value: str | None) -> bool:
    return value in ("true", "True", "1")


class Api:
    def __init__(self, emulator: Emulator) -> None:
        self.em = emulator
        self.cluster = emulator.cluster

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    # dispatch ----------------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        self.em.log_request(request.method, request.path, query)
        target = None
        try:
            if (proxied := PROXY_PATH.match(request.path)) is not None:
                await self._inject(request, None, query)
                return await self.em.proxy.handle(request, proxied)
            target = self._target(request, query)
            await self._inject(request, target, query)
            if target is None:
                return self._json(
                    discovery(self.cluster.registry, request.path, self.em.version, self.em.url)
                )
            self._authorize(target)
            return await self._serve(request, target, query)
        except ApiError as exc:
            if exc.code == 410 and target is not None and target.verb == "watch":
                return await self._watch_error(request, exc)  # as a real server: an ERROR event
            return self._json(exc.status(), exc.code, exc.headers)
        except ConnectionResetError:
            # the client went away (e.g. it timed out a slow answer): nothing to answer, not a bug
            return web.Response(status=499)
        except Exception as exc:
            self.em.internal_errors.append(traceback.format_exc())
            return self._json(
                ApiError(500, "InternalError", f"Internal error occurred: {exc!r}").status(), 500
            )

    def _json(self, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(
            text=json.dumps(body), status=status, content_type="application/json", headers=headers
        )

    def _target(self, request: web.Request, query: dict[str, str]) -> Target | None:
        parts = [p for p in request.path.split("/") if p]
        if len(parts) >= 3 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 4 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        watch = _truthy(query.get("watch"))
        if rest[0] == "watch":
            watch, rest = True, rest[1:]
        registry = self.cluster.registry
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces" and (rt := registry.find(group, version, rest[2])):
            if not rt.namespaced:
                raise NOT_FOUND
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise NOT_FOUND
        rt = registry.find(group, version, rest[0])
        if rt is None:
            raise NOT_FOUND
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and sub not in rt.subresources:
            raise NOT_FOUND
        if rt.namespaced and namespace is None and name is not None:
            raise NOT_FOUND
        verb = {
            "GET": ("watch" if watch else "get") if name else ("watch" if watch else "list"),
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
        }.get(request.method, "unknown")
        return Target(rt, namespace if rt.namespaced else None, name, sub, verb)

    async def _inject(self, request: web.Request, target: Target | None, query: dict[str, str]) -> None:
        rule = self.em.take_fault(request.method, request.path)
        if rule is None:
            return
        if rule.delay:
            await asyncio.sleep(rule.delay)
        if rule.status is None:
            return
        if target is None:
            exc = errors.generic(rule.status)
        elif rule.status == 403:
            plural = target.rt.plural + (f"/{target.subresource}" if target.subresource else "")
            exc = errors.forbidden(
                self.em.user, target.verb, plural, target.rt.group, target.namespace, target.name
            )
        elif rule.status == 409 and target.verb == "create":
            exc = errors.already_exists(target.rt.plural, target.rt.group, target.name or "")
        else:
            exc = errors.generic(rule.status, target.rt.plural, target.rt.group, target.name)
        if rule.message:
            exc.message = rule.message
        raise exc

    def _authorize(self, target: Target) -> None:
        resource = target.rt.plural + (f"/{target.subresource}" if target.subresource else "")
        if self.em.is_denied(target.verb, target.rt.group, resource):
            raise errors.forbidden(
                self.em.user, target.verb, resource, target.rt.group, target.namespace, target.name
            )

    # resources ---------------------------------------------------------------------------

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return None
        if "protobuf" in (request.content_type or ""):
            if request.path.endswith("/selfsubjectaccessreviews"):
                try:
                    return protobuf.access_review(raw)
                except (ValueError, IndexError):
                    raise bad_request("the body of the request could not be decoded as protobuf") from None
            raise ApiError(415, "UnsupportedMediaType", "the emulator accepts JSON and YAML bodies only")
        try:
            if "yaml" in (request.content_type or ""):
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise bad_request(f"the body of the request could not be decoded: {exc}") from None

    async def _serve(self, request: web.Request, t: Target, query: dict[str, str]) -> web.StreamResponse:
        cluster, rt = self.cluster, t.rt
        ns = t.namespace or ""
        dry = "dryRun" in query
        accept = request.headers.get("Accept", "")
        if (computed := self.em.computed.get(rt.key)) is not None:  # an aggregated API
            return self._json(computed(rt, t.verb, t.namespace, t.name, query))
        if t.verb == "watch":
            return await self._watch(request, t, query)
        if t.verb == "list":
            return self._json(self._list_body(t, query, accept))
        if t.subresource == "scale":
            body = await self._body(request) if request.method != "GET" else None
            ctype, name = request.content_type or "", t.name or ""
            return self._json(scale.serve(cluster, rt, ns, name, request.method, ctype, body, dry))
        if t.verb == "get" and t.subresource == "log":
            return await serve_log(self.em.kubelet, request, cluster.get(rt, ns, t.name or ""), query)
        if t.verb == "get":
            obj = cluster.view(rt, cluster.get(rt, ns, t.name or ""))
            if tables.wants_table(accept):
                return self._json(
                    tables.table(
                        rt, [obj], obj["metadata"]["resourceVersion"], query.get("includeObject", "Metadata")
                    )
                )
            return self._json(obj)
        body = await self._body(request)
        if t.verb == "create":
            if t.name is not None:
                raise ApiError(
                    405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
                )
            if rt.plural == "selfsubjectaccessreviews":
                return self._json(access_review(body, self.em.is_denied), 201)
            return self._json(cluster.view(rt, cluster.create(rt, ns, body, dry_run=dry)), 201)
        if t.verb == "update":
            return self._json(
                cluster.view(
                    rt, cluster.update(rt, ns, t.name or "", body, subresource=t.subresource, dry_run=dry)
                )
            )
        if t.verb == "patch":
            return self._json(self._patch(request, t, body, dry))
        if t.verb in ("delete", "deletecollection"):
            return self._delete(t, query, body if isinstance(body, dict) else {}, dry)
        raise ApiError(
            405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
        )

    def _patch(self, request: web.Request, t: Target, body: Any, dry: bool) -> Obj:
        cluster, rt, ns, name = self.cluster, t.rt, t.namespace or "", t.name or ""
        ctype = request.content_type or ""
        if "patch" not in ctype:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, "
                f'application/strategic-merge-patch+json; got "{ctype}"',
            )
        if "apply-patch" in ctype and cluster.store.get(rt.key, ns, name) is None:
            doc = dict(body or {})
            doc.setdefault("metadata", {})["name"] = name
            return cluster.view(rt, cluster.create(rt, ns, doc, dry_run=dry))
        return cluster.view(
            rt, cluster.patch(rt, ns, name, ctype, body, subresource=t.subresource, dry_run=dry)
        )

    def _selected(self, t: Target, query: dict[str, str]) -> list[Obj]:
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"), t.rt.plural)
        found = self.cluster.store.list(t.rt.key, t.namespace)
        return [o for o in found if labels(o["metadata"].get("labels") or {}) and fields(o)]

    def _list_body(self, t: Target, query: dict[str, str], accept: str) -> Obj:
        rv = str(self.cluster.store.rv)
        items = [self.cluster.view(t.rt, o) for o in self._selected(t, query)]
        if tables.wants_table(accept):
            return tables.table(t.rt, items, rv, query.get("includeObject", "Metadata"))
        return {
            "kind": t.rt.list_kind,
            "apiVersion": t.rt.api_version,
            "metadata": {"resourceVersion": rv},
            "items": items,
        }

    def _delete(self, t: Target, query: dict[str, str], options: Obj, dry: bool) -> web.Response:
        grace_text = query.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
        grace = float(grace_text) if grace_text not in (None, "") else None
        policy = query.get("propagationPolicy") or options.get("propagationPolicy")
        orphan = query.get("orphanDependents", options.get("orphanDependents"))
        if policy is None and orphan is not None:
            policy = "Orphan" if _truthy(str(orphan)) or orphan is True else "Background"
        pre = options.get("preconditions") or {}
        dry = dry or bool(options.get("dryRun"))
        cluster, rt = self.cluster, t.rt
        headers = {}
        if rt.key in (("batch", "jobs"),) and policy is None:
            headers["Warning"] = (
                '299 - "child pods are preserved by default when jobs are deleted; set '
                "propagationPolicy=Background to remove them or set propagationPolicy=Orphan "
                'to suppress this warning"'
            )
        if t.verb == "deletecollection":
            deleted = []
            for obj in self._selected(t, query):
                meta = obj["metadata"]
                try:
                    gone = cluster.delete(rt, meta.get("namespace", ""), meta["name"], propagation=policy,
                                          grace=grace, dry_run=dry)  # fmt: skip
                except ApiError as exc:  # already removed by an earlier cascade
                    if exc.code != 404:
                        raise
                    continue
                deleted.append(cluster.view(rt, gone))
            body = {
                "kind": rt.list_kind,
                "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": str(cluster.store.rv)},
                "items": deleted,
            }
            return self._json(body, headers=headers)
        obj = cluster.delete(
            rt,
            t.namespace or "",
            t.name or "",
            propagation=policy,
            grace=grace,
            uid=pre.get("uid"),
            rv=pre.get("resourceVersion"),
            dry_run=dry,
        )
        if rt.plural in ("pods", "services", "namespaces") or obj["metadata"].get("deletionTimestamp"):
            if rt.plural == "namespaces":
                obj.setdefault("status", {})["phase"] = "Terminating"
            return self._json(cluster.view(rt, obj), headers=headers)
        details = {"name": t.name, "kind": rt.plural, "uid": obj["metadata"]["uid"]}
        if rt.group:
            details["group"] = rt.group
        status = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }
        return self._json(status, headers=headers)

    # watch -------------------------------------------------------------------------------

    async def _watch(self, request: web.Request, t: Target, query: dict[str, str]) -> web.StreamResponse:
        store = self.cluster.store
        field_text = query.get("fieldSelector")
        if t.name:
            field_text = f"{_NAME_SELECTOR}{t.name}" + (f",{field_text}" if field_text else "")
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(field_text, t.rt.plural)
        watcher = Watcher(
            t.rt.key, t.namespace, lambda o: labels(o["metadata"].get("labels") or {}) and fields(o)
        )
        rv_text = query.get("resourceVersion") or "0"
        if not re.fullmatch(r"\d+", rv_text):
            raise bad_request(f'Invalid value: "{rv_text}": resourceVersion must be an integer')
        initial: list[Event] | None
        if rv_text == "0":
            initial = [
                Event(int(o["metadata"]["resourceVersion"]), t.rt.key, "", "ADDED", o)
                for o in store.list(t.rt.key, t.namespace)
                if watcher.accept(o)
            ]
        else:
            initial = store.since(int(rv_text), watcher)
        store.watchers.add(watcher)
        as_table = tables.wants_table(request.headers.get("Accept", ""))
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            await response.prepare(request)
            if initial is None:
                expired = errors.gone(f"too old resource version: {rv_text} ({store.compacted + 1})")
                await response.write(
                    json.dumps({"type": "ERROR", "object": expired.status()}).encode() + b"\n"
                )
                return response
            for event in initial:
                await self._send(response, t.rt, event, as_table)
            while not self.em.closing:
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    break
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), remaining)
                except TimeoutError:
                    break
                if event is None:
                    break
                await self._send(response, t.rt, event, as_table)
        except ConnectionError:
            pass
        finally:
            store.watchers.discard(watcher)
        return response

    async def _watch_error(self, request: web.Request, exc: ApiError) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(json.dumps({"type": "ERROR", "object": exc.status()}).encode() + b"\n")
        return response

    async def _send(
        self, response: web.StreamResponse, rt: ResourceType, event: Event, as_table: bool
    ) -> None:
        obj = self.cluster.view(rt, event.obj)
        if as_table:
            obj = tables.table(rt, [obj], obj["metadata"]["resourceVersion"], "Object")
        await response.write(json.dumps({"type": event.type, "object": obj}).encode() + b"\n")
