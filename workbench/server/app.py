"""The Jupyter Server extension application.

REST API under ``<base_url>/workbench/api/``::

    GET    workloads?kind=&status=&backend=   {"workloads": [record, ...]}, newest first
    POST   workloads                          a spec → 201 + record
    GET    workloads/NAME                     record
    DELETE workloads/NAME?force=              204
    POST   workloads/NAME/cancel              record
    GET    workloads/NAME/logs?follow=        text/plain, streamed while following
    GET    workloads/NAME/usage?since=        {"summary", "history": [sample, ...], "source", "note"}
    POST   workloads/NAME/scale               {"workers": N} | {"adapt": "MIN:MAX"} → record
    GET    workloads/NAME/rollout             an endpoint's rollout state (phase, revision, canary, …)
    POST   workloads/NAME/rollout             {"change": {...}} | {"action": "undo", "to_revision": N}
                                              | {"action": "promote"} → the rollout state, at once
    GET    workloads/NAME/revisions           {"revisions": [...]}, oldest first
    POST   workloads/NAME/endpoint-scale      {"replicas": N} | {"autoscale": "MIN:MAX"} → record
    GET    workloads/NAME/files               {"run_dir", "files": [{"path", "size", "modified"}], "notebook"}
    GET    workloads/NAME/files/REL?inline=   one file of the run directory (attachment unless inline)
    GET    workloads/NAME/spec                {"kind", "spec"}: the launchable spec, to clone it
    POST   workloads/NAME/rerun               {} | {"parameters": {...}, "name": N} → 201 + record
    POST   workloads/NAME/pause | resume      a schedule's CronJob suspended or not → record
    GET    workloads/NAME/runs                {"runs": [{"name", "status", "started", "ended", …}]}
    GET    notebook-parameters?path=REL       {"path", "name", "parameters": [{"name", "type", "default",
                                              "help"}]}: a notebook's declared parameters
    GET    schemas | schemas/KIND | profiles | backends

and ``GET <base_url>/workbench/metrics``: Prometheus metrics of the workloads (:mod:`.metrics`),
authenticated as jupyter_server's ``/metrics`` is (``ServerApp.authenticate_prometheus``).

A request body is a JSON object of at most 4 MiB nesting at most 32 levels
(:mod:`workbench.spec_limits`); the files and run directories a spec names stay inside the
server's root directory, and URL outputs need their scheme in ``allowed_output_schemes``
(:mod:`.paths`).

Live changes go out on the Jupyter Server event bus (schema :data:`~.watcher.SCHEMA_ID`),
which the page receives through ``/api/events/subscribe``.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.serverapp import ServerApp
from traitlets import Float, Int, List, TraitError, Type, Unicode, validate

from ..service import Service
from .actions import PauseHandler, RerunHandler, ResumeHandler, RunsHandler
from .endpoints import EndpointScaleHandler, RevisionsHandler, RolloutHandler
from .meta import BackendsHandler, ProfilesHandler, SchemaHandler, SchemasHandler
from .metrics import MetricsHandler, WorkbenchMetrics
from .outputs import FileHandler, FilesHandler, SpecHandler
from .params import NotebookParametersHandler
from .paths import SCHEME_NAME
from .probe import Answer, CachedProbe, probe
from .runner import ServiceRunner
from .usage_handlers import UsageHandler
from .watcher import SCHEMA_ID, SCHEMA_PATH, ChangeWatcher
from .workloads import CancelHandler, LogsHandler, ScaleHandler, WorkloadHandler, WorkloadsHandler

API = "/workbench/api"
NAME = r"(?P<name>[^/]+)"


class WorkbenchApp(ExtensionApp):
    """Serves the workbench REST API and pushes workload events to the page."""

    name = "workbench"
    load_other_extensions = True

    service_class = Type(
        default_value=Service,
        klass=Service,
        help="The service the handlers call (one instance per worker thread).",
    ).tag(config=True)
    poll_interval = Float(
        0.25, help="Seconds between two checks of the workload store for changes made by any process."
    ).tag(config=True)
    refresh_interval = Float(
        2.0, help="Seconds between two refreshes of active workloads through their backends."
    ).tag(config=True)
    max_threads = Int(8, help="How many service calls may run at once.").tag(config=True)
    probe_timeout = Float(5.0, help="Seconds to wait for a backend probe (GET backends).").tag(config=True)
    probe_ttl = Float(30.0, help="Seconds a backend probe's answer is kept.").tag(config=True)
    allowed_output_schemes = List(
        Unicode(),
        default_value=[],
        help=(
            "URL schemes a notebook's output (its run directory) may use when launched through the "
            "REST API, e.g. ['s3', 'gs']. Empty by default: only paths inside the server's root "
            "directory (or file:// URLs to them). Local-filesystem aliases such as local:// are "
            "never allowed."
        ),
    ).tag(config=True)

    @validate("allowed_output_schemes")
    def _schemes(self, proposal: Any) -> list[str]:
        schemes = [str(s).strip().lower().removesuffix("://") for s in proposal["value"]]
        for scheme in schemes:
            if not SCHEME_NAME.match(scheme) or scheme in ("local", "memory"):
                raise TraitError(
                    f"WorkbenchApp.allowed_output_schemes: {scheme!r} is not a URL scheme of a shared "
                    "filesystem; write names such as 's3' or 'gs'"
                )
        return schemes

    runner: ServiceRunner
    watcher: ChangeWatcher
    local_probe: CachedProbe
    kubernetes_probe: CachedProbe
    metrics: WorkbenchMetrics

    def initialize_settings(self) -> None:
        self.runner = ServiceRunner(self.service_class, max_workers=self.max_threads)
        runner = self.runner
        self.metrics = WorkbenchMetrics()

        def kubernetes_fallback(error: str) -> Answer:
            return {
                "available": False,
                "context": None,
                "namespace": None,
                "version": None,
                "gpus": None,
                "error": error,
            }

        self.local_probe = CachedProbe(
            lambda: probe(runner, "local", self.probe_timeout),
            timeout=max(self.probe_timeout, 15.0),  # nvidia-smi gets 10 s of its own
            ttl=self.probe_ttl,
            fallback=lambda error: {"available": True, "gpus": None, "error": error},
        )
        self.kubernetes_probe = CachedProbe(
            lambda: probe(runner, "kubernetes", self.probe_timeout),
            timeout=self.probe_timeout,
            ttl=self.probe_ttl,
            fallback=kubernetes_fallback,
        )
        events = self._server.event_logger
        if events is None:  # pragma: no cover - ServerApp.initialize makes it before extensions load
            raise RuntimeError("the Jupyter server has no event logger")
        events.register_event_schema(SCHEMA_PATH)

        def emit(data: dict[str, Any]) -> None:
            events.emit(schema_id=SCHEMA_ID, data=data)

        self.watcher = ChangeWatcher(
            runner.new_service,
            emit,
            poll_interval=self.poll_interval,
            refresh_interval=self.refresh_interval,
            log=self.log,
        )

    def initialize_handlers(self) -> None:
        # ExtensionApp puts the server's base_url in front of each pattern (url_path_join)
        self.handlers.extend(
            [
                (f"{API}/workloads", WorkloadsHandler),
                (f"{API}/workloads/{NAME}", WorkloadHandler),
                (f"{API}/workloads/{NAME}/cancel", CancelHandler),
                (f"{API}/workloads/{NAME}/logs", LogsHandler),
                (f"{API}/workloads/{NAME}/usage", UsageHandler),
                (f"{API}/workloads/{NAME}/scale", ScaleHandler),
                (f"{API}/workloads/{NAME}/rollout", RolloutHandler),
                (f"{API}/workloads/{NAME}/revisions", RevisionsHandler),
                (f"{API}/workloads/{NAME}/endpoint-scale", EndpointScaleHandler),
                (f"{API}/workloads/{NAME}/files", FilesHandler),
                (rf"{API}/workloads/{NAME}/files/(?P<rel>.+)", FileHandler),
                (f"{API}/workloads/{NAME}/spec", SpecHandler),
                (f"{API}/workloads/{NAME}/rerun", RerunHandler),
                (f"{API}/workloads/{NAME}/pause", PauseHandler),
                (f"{API}/workloads/{NAME}/resume", ResumeHandler),
                (f"{API}/workloads/{NAME}/runs", RunsHandler),
                (f"{API}/notebook-parameters", NotebookParametersHandler),
                (f"{API}/schemas", SchemasHandler),
                (rf"{API}/schemas/(?P<kind>[^/]+)", SchemaHandler),
                (f"{API}/profiles", ProfilesHandler),
                (f"{API}/backends", BackendsHandler),
                ("/workbench/metrics", MetricsHandler),
            ]
        )

    @property
    def _server(self) -> ServerApp:
        if self.serverapp is None:  # pragma: no cover - jupyter_server links the app first
            raise RuntimeError("the workbench extension is not linked to a Jupyter server")
        return self.serverapp

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        """Called by Jupyter Server once its event loop runs: start watching for changes."""
        self.watcher.start()

    async def stop_extension(self) -> None:
        await self.watcher.stop()
        self.runner.shutdown()
