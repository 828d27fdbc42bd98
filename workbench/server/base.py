"""The base of every REST handler: authentication, JSON in and out, and the one error mapping."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin

from ..errors import SpecError, WorkbenchError
from ..notebooks import PROGRESS
from ..spec_limits import MAX_DEPTH, MAX_SPEC_BYTES
from ..store import ACTIVE
from ..units import format_bytes

if TYPE_CHECKING:
    from ..service import Service
    from ..store import Workload
    from .app import WorkbenchApp

T = TypeVar("T")
#: the resource jupyter_server's Authorizer is asked about for every request
AUTH_RESOURCE = "workbench"
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


def record(workload: Workload) -> dict[str, Any]:
    """A workload as the API shows it: the stored record, its ``name``, ``age`` in seconds,
    ``duration_seconds`` (from its start to its end, or until now while it runs; null before it
    started), ``progress`` (``{"done", "total", "label"}``: which cell a local notebook run is
    executing, else null) and for Dask ``workers_live`` (the live worker count when a backend
    records it, else null)."""
    now = time.time()
    data = workload.to_dict()
    data["name"] = workload.name
    data["age"] = round(max(0.0, now - workload.created), 3)
    started = workload.started
    data["duration_seconds"] = (
        None if started is None else round(max(0.0, (workload.ended or now) - started), 3)
    )
    data["progress"] = progress(workload)
    if workload.kind == "dask":
        live = workload.info.get("workers_live")
        data["workers_live"] = live if isinstance(live, int) and not isinstance(live, bool) else None
    return data


def progress(workload: Workload) -> dict[str, Any] | None:
    """Which cell of how many an active local notebook run is executing (its ``progress.json``)."""
    if workload.kind != "notebook" or workload.status not in ACTIVE or workload.backend != "local":
        return None
    try:
        data = json.loads((Path(workload.run_dir) / PROGRESS).read_text())
        done, total = int(data["done"]), int(data["total"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {"done": done, "total": total, "label": f"cell {done + 1} of {total}"}


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON; send a number or null")


def json_depth(data: Any) -> int:
    """How many levels of objects and arrays ``data`` nests (0 for a scalar), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                break
            stack.extend((sub, depth + 1) for sub in (item.values() if isinstance(item, dict) else item))
    return deepest


class WorkbenchHandler(ExtensionHandlerMixin, APIHandler):
    """Handlers call the service through :meth:`call` and raise workbench errors freely.

    A :class:`~workbench.errors.WorkbenchError` becomes its ``http_status`` with
    ``to_dict()`` as the JSON body (400 bad input, 403 refused, 404 unknown, 409 conflict,
    503 backend unavailable); anything else is a bug and answers 500.
    """

    auth_resource = AUTH_RESOURCE

    @property
    def workbench(self) -> WorkbenchApp:
        return cast("WorkbenchApp", self.extensionapp)

    async def call(self, fn: Callable[[Service], T]) -> T:
        """``fn(service)`` off the event loop."""
        return await self.workbench.runner.call(fn)

    @property
    def root_dir(self) -> Path:
        """The server's root directory (what the file browser shows), resolved."""
        return Path(self.serverapp.root_dir).expanduser().resolve()

    # -- input -----------------------------------------------------------------------------
    def json_object(self) -> dict[str, Any]:
        """The request body, which must be a JSON object of at most :data:`MAX_SPEC_BYTES`
        nesting at most :data:`MAX_DEPTH` levels.

        Raises:
            SpecError: no body, too long, invalid JSON (NaN and Infinity included), too deep,
                or not an object.
        """
        size = len(self.request.body)
        if size > MAX_SPEC_BYTES:
            raise SpecError(
                f"the request body is {format_bytes(size)}B; "
                f"at most {format_bytes(MAX_SPEC_BYTES)}B are allowed",
                hint="keep data in files in the Jupyter root, not in the spec",
            )
        body = self.request.body.strip()
        if not body:
            raise SpecError(
                "the request body is empty; send a JSON object", hint="see GET workbench/api/schemas"
            )
        shown = body[:80].decode("utf-8", "replace")
        too_deep = False
        try:
            data = json.loads(body, parse_constant=_not_json)
        except RecursionError:
            data, too_deep = None, True
        except ValueError as exc:
            raise SpecError(f"the request body {shown!r} is not valid JSON: {exc}", value=shown) from None
        if too_deep or json_depth(data) > MAX_DEPTH:
            raise SpecError(
                f"the request body nests deeper than {MAX_DEPTH} levels", value=shown, hint="flatten it"
            )
        if not isinstance(data, dict):
            raise SpecError(f"the request body must be a JSON object, not {type(data).__name__}", value=shown)
        return data

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean query argument: true/false, 1/0, yes/no."""
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        value = raw.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise SpecError(f"query argument {name}={raw!r} must be true or false", value=raw)

    # -- output ----------------------------------------------------------------------------
    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(data))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if exc_info else None
        if isinstance(error, WorkbenchError):
            self.set_status(error.http_status)
            self.finish(json.dumps(error.to_dict()))
            return
        super().write_error(status_code, **kwargs)

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(value, WorkbenchError):  # expected: the client gets it; no traceback
            self.log.info("%s %s: %s", self.request.method, self.request.uri, value.one_line())
            return
        super().log_exception(typ, value, tb)
