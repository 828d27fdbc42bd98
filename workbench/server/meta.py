"""REST handlers for what the sidebar builds its forms from: schemas, profiles, backends."""

from __future__ import annotations

import asyncio
from functools import cache
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..errors import NotFound
from ..spec import KINDS, json_schema
from .base import WorkbenchHandler


@cache
def _schema(kind: str) -> dict[str, Any]:
    return json_schema(kind)


class SchemasHandler(WorkbenchHandler):
    """``GET schemas``: the JSON Schema of every kind's spec."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply({kind: _schema(kind) for kind in KINDS})


class SchemaHandler(WorkbenchHandler):
    """``GET schemas/KIND``."""

    @web.authenticated
    @authorized
    async def get(self, kind: str) -> None:
        if kind not in KINDS:
            raise NotFound(
                f"no schema for kind {kind!r}; choose one of {', '.join(KINDS)}",
                value=kind,
                hint="GET workbench/api/schemas lists them all",
            )
        self.reply(_schema(kind))


class ProfilesHandler(WorkbenchHandler):
    """``GET profiles``: the admin's presets from the config file."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        runner = self.workbench.runner
        settings = await runner.run(runner.settings)
        profiles = {name: profile.model_dump(mode="json") for name, profile in settings.profiles.items()}
        self.reply({"profiles": profiles})


class BackendsHandler(WorkbenchHandler):
    """``GET backends``: the default backend, and what each one can offer now."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        runner = self.workbench.runner
        settings = await runner.run(runner.settings)
        local, kubernetes = await asyncio.gather(
            self.workbench.local_probe.get(), self.workbench.kubernetes_probe.get()
        )
        self.reply({"default": settings.backend, "backends": {"local": local, "kubernetes": kubernetes}})
