"""REST handlers for workloads: list, launch, describe, cancel, delete, logs, scale.

Each record carries ``usage``: its resource usage summary (peaks, averages, last sample), or
null when it has none; a listing reads every summary in one query.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.iostream import StreamClosedError

from ..errors import SpecError
from ..spec import KINDS, AdaptRange, check_adapt
from ..spec_limits import MAX_WORKERS
from ..store import ACTIVE, FINAL, Workload
from .base import WorkbenchHandler, record
from .paths import confine_spec
from .runner import LogStream

if TYPE_CHECKING:
    from ..service import Service

STATUSES = (*ACTIVE, *FINAL)


def with_usage(service: Service, workloads: list[Workload]) -> list[dict[str, Any]]:
    """The REST records of ``workloads``, each with its ``usage`` summary (null when none)."""
    summaries = service.usage_summaries(workloads)
    return [{**record(w), "usage": summaries.get(w.id)} for w in workloads]


def one_with_usage(service: Service, workload: Workload) -> dict[str, Any]:
    return with_usage(service, [workload])[0]


class WorkloadsHandler(WorkbenchHandler):
    """``GET workloads?kind=&status=&backend=`` and ``POST workloads`` (a spec)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        kind = self.get_query_argument("kind", None) or None
        backend = self.get_query_argument("backend", None) or None
        status = [s for value in self.get_query_arguments("status") for s in value.split(",") if s] or None
        if kind is not None and kind not in KINDS:
            raise SpecError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}", value=kind)
        for value in status or ():
            if value not in STATUSES:
                raise SpecError(f"unknown status {value!r}; choose from {', '.join(STATUSES)}", value=value)
        records = await self.call(lambda s: with_usage(s, s.list(kind=kind, status=status, backend=backend)))
        self.reply({"workloads": records})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        root = self.root_dir
        spec = confine_spec(self.json_object(), root, self.workbench.allowed_output_schemes)
        workload = await self.call(lambda s: s.launch(spec, cwd=str(root)))
        self.set_header("Location", url_path_join(self.base_url, "workbench/api/workloads", workload.id))
        self.reply({**record(workload), "usage": None}, status=201)


class WorkloadHandler(WorkbenchHandler):
    """``GET workloads/NAME`` and ``DELETE workloads/NAME?force=``."""

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        self.reply(await self.call(lambda s: one_with_usage(s, s.get(name))))

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        force = self.flag("force")
        await self.call(lambda s: s.delete(name, force=force))
        self.set_status(204)
        self.finish()


class CancelHandler(WorkbenchHandler):
    """``POST workloads/NAME/cancel``."""

    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        self.reply(await self.call(lambda s: one_with_usage(s, s.cancel(name))))


class LogsHandler(WorkbenchHandler):
    """``GET workloads/NAME/logs?follow=``: the output as text/plain, streamed while following."""

    _stream: LogStream | None = None

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        follow = self.flag("follow")
        self._stream = stream = LogStream(self.workbench.runner, name, follow=follow)
        stream.start()
        try:
            await stream.opened()  # an unknown workload is still a JSON 404 here
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.set_header("Cache-Control", "no-cache")
            if follow:
                self.set_header("X-Accel-Buffering", "no")  # proxies: pass chunks on as they come
                await self.flush()
            while (chunk := await stream.next()) is not None:
                self.write(chunk)
                if follow:
                    await self.flush()
        except StreamClosedError:
            return  # the client went away
        finally:
            stream.stop()
        self.finish(set_content_type="text/plain; charset=utf-8")

    def on_connection_close(self) -> None:
        if self._stream is not None:
            self._stream.stop()  # wakes the handler; the reader ends at its next chunk
        super().on_connection_close()


def _scale_request(body: dict[str, Any]) -> tuple[str, int | AdaptRange]:
    """``{"workers": N}`` or ``{"adapt": "MIN:MAX"}``, checked."""
    if len(body) != 1 or next(iter(body)) not in ("workers", "adapt"):
        raise SpecError(
            'send either {"workers": N} or {"adapt": "MIN:MAX"}, not ' + (",".join(body) or "nothing"),
            value=",".join(body) or None,
        )
    if "workers" in body:
        workers = body["workers"]
        if isinstance(workers, bool) or not isinstance(workers, int) or not 0 <= workers <= MAX_WORKERS:
            raise SpecError(
                f"workers {workers!r} must be a whole number from 0 to {MAX_WORKERS}", value=workers
            )
        return "workers", workers
    return "adapt", check_adapt(body["adapt"])


class ScaleHandler(WorkbenchHandler):
    """``POST workloads/NAME/scale`` with ``{"workers": N}`` or ``{"adapt": "MIN:MAX"}``."""

    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        how, value = _scale_request(self.json_object())
        self.reply(await self.call(lambda s: one_with_usage(s, _scale(s, name, how, value))))


def _scale(service: Service, name: str, how: str, value: int | AdaptRange) -> Workload:
    workload = service.get(name)
    if workload.kind != "dask":
        raise SpecError(
            f"scaling applies to dask workloads; {workload.id!r} is a {workload.kind} workload",
            value=workload.id,
        )
    method: Callable[..., Any] | None = getattr(service, "scale" if how == "workers" else "adapt", None)
    if method is None:
        raise SpecError(
            "scaling applies to dask workloads, which this version of workbench cannot run yet",
            value=workload.id,
        )
    if isinstance(value, AdaptRange):
        result = method(workload.id, value.minimum, value.maximum)
    else:
        result = method(workload.id, workers=value)
    return result if isinstance(result, Workload) else service.get(workload.id)
