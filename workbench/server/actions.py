"""REST actions on one workload beyond cancel and scale: re-run it, pause or resume a schedule, list
the runs a schedule made.

A schedule is a notebook workload launched with ``schedule`` on Kubernetes (a CronJob):
``POST workloads/NAME/pause`` and ``.../resume`` set the CronJob's ``suspend`` and answer the
record (``info.schedule.suspended`` says which); ``GET workloads/NAME/runs`` answers
``{"runs": [{"name", "status", "message", "started", "ended", "location"}]}``, the Jobs it
made, newest first. Any other workload answers 409.

``POST workloads/NAME/rerun`` launches a new workload like the old one: a notebook run repeats
from its snapshot (:func:`workbench.notebooks.rerun_fields`) with ``parameters`` merged over
the old values; another kind relaunches its stored spec (its cell code from the payload). The
body is ``{}`` or ``{"parameters": {...}, "name": "new-name"}``. Files the spec names and a
notebook's ``output`` stay confined to the server's root as in ``POST workloads``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado import web

from ..errors import SpecError
from ..notebooks import rerun_fields
from .base import WorkbenchHandler, record
from .outputs import launchable_spec
from .paths import LOCATION_FIELDS, confine_location, confine_spec
from .workloads import one_with_usage

if TYPE_CHECKING:
    from collections.abc import Collection

    from ..service import Service
    from ..store import Workload

_RERUN_KEYS = ("parameters", "name")


def rerun_request(body: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The ``parameters`` and ``name`` of a rerun request, checked for shape."""
    extra = sorted(set(body) - set(_RERUN_KEYS))
    if extra:
        raise SpecError(
            f"a rerun takes parameters and name, not {', '.join(extra)}",
            value=",".join(extra),
            hint='send {} or {"parameters": {...}, "name": "new-name"}',
        )
    parameters = body.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise SpecError(
            f"parameters must be an object of NAME: value, not {type(parameters).__name__}",
            value=json.dumps(parameters)[:80],
        )
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise SpecError(f"name must be text, not {type(name).__name__}", value=name)
    return parameters, name or None


def rerun_spec(
    workload: Workload,
    parameters: dict[str, Any] | None,
    name: str | None,
    root: Path,
    allowed_schemes: Collection[str],
) -> tuple[dict[str, Any], str]:
    """The raw spec and launch directory that re-run ``workload``.

    Raises:
        SpecError: parameters for a kind that has none, kernel variables to send, no snapshot.
        PermissionDenied: a file or run location of the old spec is outside ``root``.
    """
    if workload.kind == "notebook":
        raw, cwd = rerun_fields(workload)
        raw["parameters"] = {**(raw.get("parameters") or {}), **(parameters or {})}
        base = Path(cwd or root)
        pod = raw.get("backend") == "kubernetes"
        for field in LOCATION_FIELDS:  # a path from the CLI is relative to its working directory
            value = raw.get(field)
            if isinstance(value, str) and value:
                if not pod and "://" not in value and not Path(value).is_absolute():
                    value = str(base / value)
                raw[field] = confine_location(value, root, field, allowed_schemes, pod=pod)
        launch_cwd = str(base)
    else:
        if parameters:
            raise SpecError(
                f"{workload.id} is a {workload.kind} workload; parameters apply to notebook runs",
                value=workload.id,
                hint="send {} to run it again as it was",
            )
        raw = launchable_spec(workload, root)
        if raw.get("send"):
            names = ", ".join(raw["send"])
            raise SpecError(
                f"{workload.id} was sent the kernel's variables {names}; only the kernel has them",
                value=workload.id,
                hint="run it again from its notebook, or clone it without the sent variables",
            )
        raw = confine_spec(raw, root, allowed_schemes)
        launch_cwd = str(root)
    raw.pop("name", None)
    if name:
        raw["name"] = name
    return raw, launch_cwd


def _rerun(
    service: Service,
    name: str,
    parameters: dict[str, Any] | None,
    new_name: str | None,
    root: Path,
    allowed_schemes: Collection[str],
) -> Workload:
    workload = service.store.find(name)
    raw, cwd = rerun_spec(workload, parameters, new_name, root, allowed_schemes)
    return service.launch(raw, cwd=cwd)


class RerunHandler(WorkbenchHandler):
    """``POST workloads/NAME/rerun`` with ``{}`` or ``{"parameters": {...}, "name": "new-name"}`` → 201."""

    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        parameters, new_name = rerun_request(self.json_object() if self.request.body.strip() else {})
        root = self.root_dir
        schemes = self.workbench.allowed_output_schemes
        workload = await self.call(lambda s: _rerun(s, name, parameters, new_name, root, schemes))
        self.set_header("Location", url_path_join(self.base_url, "workbench/api/workloads", workload.id))
        self.reply({**record(workload), "usage": None}, status=201)


def _suspend(service: Service, name: str, suspended: bool) -> dict[str, Any]:
    workload = service.pause(name) if suspended else service.resume(name)
    return one_with_usage(service, workload)


class PauseHandler(WorkbenchHandler):
    """``POST workloads/NAME/pause``: a schedule starts no run until resumed → the record."""

    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        self.reply(await self.call(lambda s: _suspend(s, name, True)))


class ResumeHandler(WorkbenchHandler):
    """``POST workloads/NAME/resume``: a paused schedule runs again when due → the record."""

    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        self.reply(await self.call(lambda s: _suspend(s, name, False)))


class RunsHandler(WorkbenchHandler):
    """``GET workloads/NAME/runs``: ``{"runs": [...]}``, the Jobs a schedule made, newest first."""

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        self.reply({"runs": await self.call(lambda s: s.schedule_runs(name))})
