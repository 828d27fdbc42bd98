"""The extension's wiring: discovery, cheap import, configurable traits, a swappable service."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from jupyter_server.serverapp import ServerApp

from tests.conftest import assert_nothing_created
from workbench.errors import PermissionDenied
from workbench.server import _jupyter_server_extension_points
from workbench.server.app import WorkbenchApp
from workbench.service import Service

from .conftest import Api, workbench_app


class NoLaunchService(Service):
    """A site policy an admin might plug in: the sidebar may watch but not launch."""

    def launch(self, spec: Any, **kwargs: Any) -> Any:
        raise PermissionDenied("launching from the browser is disabled on this server", hint="use the CLI")


def test_extension_points_name_the_app() -> None:
    assert _jupyter_server_extension_points() == [{"module": "workbench.server", "app": WorkbenchApp}]
    assert WorkbenchApp.name == "workbench"


def test_importing_the_package_imports_no_server() -> None:
    code = (
        "import sys, workbench.server\n"
        "print(sorted(m for m in sys.modules if m.startswith(('jupyter_server', 'tornado'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("workbench_config", [{"poll_interval": 0.5, "refresh_interval": 7.0}])
def test_traits_come_from_the_server_config(wb_server: ServerApp) -> None:
    app = workbench_app(wb_server)
    assert (app.watcher.poll_interval, app.watcher.refresh_interval) == (0.5, 7.0)
    assert app.service_class is Service


@pytest.mark.parametrize("workbench_config", [{"service_class": NoLaunchService}])
async def test_the_service_class_is_swappable(api: Api, service: Service) -> None:
    reply = await api("POST", "workloads", body={"kind": "pod", "code": "pass"})
    assert reply.code == 403 and reply.json["error"] == "PermissionDenied", reply.body
    assert_nothing_created(service)
    assert (await api("GET", "workloads")).json == {"workloads": []}
