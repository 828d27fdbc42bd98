"""The backend protocol, the optional abilities a backend may declare, and the registry.

A backend turns a validated spec into running work and answers for it afterwards. The
service is its only caller, and finds backends by name in the registry below.

Abilities beyond the core protocol (scaling Dask clusters, finding workloads by their labels,
manifests for kubectl, RBAC, doctor checks, a probe for the sidebar) are Protocols below. A
backend declares the ones it implements in its ``abilities``; the service asks
:func:`ability`, never ``hasattr``, so an ability is there because it was declared.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..errors import BackendUnavailable

if TYPE_CHECKING:
    from ..config import Settings
    from ..spec import CommonSpec, RevisionChange
    from ..store import Store, Workload


@dataclass(frozen=True)
class Payload:
    """What a workload carries besides its spec: code, inputs, where it was launched."""

    code: str | None = None
    script: bytes | None = None
    script_name: str | None = None
    inputs: bytes | None = None
    cwd: str | None = None
    session: str | None = None
    #: hex key that seals ``--get`` results (see workbench.runtime.results); None without --get
    results_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    """What every backend provides. Workloads are passed as store records."""

    name: str
    #: the ability Protocols (below) this backend implements
    abilities: ClassVar[frozenset[type]]

    def submit(self, workload_id: str, spec: CommonSpec, payload: Payload) -> Workload:
        """Create the workload; on failure, leave nothing behind."""

    def refresh(self, workload: Workload) -> Workload:
        """The record brought up to date with reality (a dead process, a finished pod)."""

    def logs(self, workload: Workload, *, follow: bool = False) -> Iterator[str]:
        """The workload's output; with ``follow``, until it ends."""

    def cancel(self, workload: Workload) -> Workload:
        """Stop the workload (the whole process group or all its pods)."""

    def delete(self, workload: Workload) -> None:
        """Remove what the finished workload left on the backend; the service drops the record."""

    def results(self, workload: Workload, key: bytes) -> dict[str, Any]:
        """The ``--get`` variables a succeeded workload brought back, sealed with ``key``.

        Nothing is unpickled unless its seal matches ``key``.
        """


# -- abilities ---------------------------------------------------------------------------------
OK, INFO, WARN, FAIL = "ok", "info", "warn", "FAIL"


@dataclass(frozen=True)
class Check:
    """One line of `workbench doctor`: a level (OK, INFO, WARN, FAIL), what, and the detail."""

    level: str
    what: str
    detail: str


class DaskControl(Protocol):
    """Dask clusters: their scheduler address, and scaling them."""

    def dask_address(self, workload: Workload, timeout: float = 60.0) -> Workload: ...

    def scale(self, workload: Workload, workers: int) -> Workload: ...

    def adapt(self, workload: Workload, minimum: int, maximum: int) -> Workload: ...


class Serving(Protocol):
    """Endpoints of ``serve`` workloads: revisions, rollouts, traffic, and requests to them.

    Rollouts return at once; :meth:`rollout_state` says how far they got. Revisions are
    numbered from 1; an undo makes a new revision with the old one's contents (as
    ``kubectl rollout undo`` does).
    """

    def rollout(self, workload: Workload, change: RevisionChange, payload: Payload) -> Workload:
        """Start the next revision: the current one changed by ``change`` (new code, if any,
        in ``payload``); with ``change.canary`` only that percent of requests go to it."""

    def promote(self, workload: Workload) -> Workload:
        """Send every request to the canary revision; the previous one is drained and stopped."""

    def undo(self, workload: Workload, to_revision: int | None) -> Workload:
        """Go back to ``to_revision`` (default: the one before the current) as a new revision."""

    def rollout_state(self, workload: Workload) -> dict[str, Any]:
        """``{"generation", "phase": progressing|complete|failed, "message", "revision",
        "canary", "traffic": {revision: percent}, "ready", "desired"}``."""

    def history(self, workload: Workload) -> list[dict[str, Any]]:
        """The revisions, oldest first: ``{"revision", "created", "cause", "model_uri", "image"}``."""

    def scale_endpoint(
        self, workload: Workload, replicas: int | None, autoscale: tuple[int, int] | None
    ) -> Workload:
        """Set a fixed replica count, or let load scale replicas between the bounds."""

    def request(
        self, workload: Workload, method: str, path: str, body: bytes | None, timeout: float
    ) -> tuple[int, bytes]:
        """One HTTP request to the endpoint (path like ``/v2/models/m/infer``): status and body."""


class Discovery(Protocol):
    """Workloads made elsewhere (another machine, another kernel) found and recorded."""

    def discover(self) -> None: ...


class Manifests(Protocol):
    """The objects a launch makes, built without contacting anything (dry run, export)."""

    def manifests(self, workload_id: str, spec: CommonSpec, payload: Payload) -> list[dict[str, Any]]: ...

    def rbac(self, namespace: str | None, service_account: str, *, cluster: bool) -> list[dict[str, Any]]:
        """The least-privilege access objects the backend needs."""


class Diagnosis(Protocol):
    """Checks for `workbench doctor`; ``required``: the backend is the configured default.

    A class-level ability: it needs the settings only (not the store, which may be the
    very thing that is broken).
    """

    def diagnose(self, settings: Settings, *, required: bool) -> list[Check]: ...


class Probing(Protocol):
    """What the sidebar shows of a backend: can it run work now, on how many GPUs
    (class-level, like :class:`Diagnosis`)."""

    def probe(self, settings: Settings, timeout: float) -> dict[str, Any]: ...


class Scheduling(Protocol):
    """Schedules (notebook runs launched with ``schedule``): pause, resume, and the runs made."""

    def suspend(self, workload: Workload, suspended: bool) -> Workload:
        """Pause (``suspended``) or resume a schedule; a run already going runs on."""

    def schedule_runs(self, workload: Workload) -> list[dict[str, Any]]:
        """The runs a schedule made, newest first."""


class Metering(Protocol):
    """What a workload uses, read from the backend's own source when asked (Kubernetes: the
    ``metrics.k8s.io`` PodMetrics of its pods) and kept in the store's usage tables.

    The answer is :meth:`workbench.service.Service.usage`'s: ``{"summary": {...} | None,
    "history": [sample, ...], "source": str, "note": str | None}``, the note saying in one
    line why there are no figures (e.g. the cluster serves no metrics API).
    """

    def usage(self, workload: Workload) -> dict[str, Any]: ...


def ability(backend: Backend | type[Backend] | None, protocol: object) -> Any:
    """``backend`` (an instance, or a class for class-level abilities) when it declares the
    ability ``protocol`` (one of the Protocols above), else None; annotate the result with
    the Protocol at the call."""
    return backend if backend is not None and protocol in backend.abilities else None


BackendFactory = Callable[["Settings", "Store"], Backend]

#: The backends, by the name a spec's ``backend`` field takes (the spec admits exactly these).
_BUILTIN = {
    "local": "workbench.backends.local:LocalBackend",
    "kubernetes": "workbench.backends.kubernetes.backend:KubernetesBackend",
}


def backend_names() -> list[str]:
    """Every backend of this installation."""
    return sorted(_BUILTIN)


def backend_class(name: str) -> type[Backend]:
    """The class of the backend called ``name`` (its module is imported on first use).

    Raises:
        BackendUnavailable: no backend by that name is installed.
    """
    if name not in _BUILTIN:
        raise BackendUnavailable(
            f"the {name!r} backend is not available in this installation (available: {', '.join(_BUILTIN)})",
            value=name,
            hint="use --backend local",
        )
    module, _, attr = _BUILTIN[name].partition(":")
    cls: type[Backend] = getattr(importlib.import_module(module), attr)
    return cls


def create_backend(name: str, settings: Settings, store: Store) -> Backend:
    """The backend called ``name``, working on ``store``.

    Raises:
        BackendUnavailable: no backend by that name is installed.
    """
    factory: BackendFactory = backend_class(name)
    return factory(settings, store)
