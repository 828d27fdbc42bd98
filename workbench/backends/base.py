"""The backend protocol and the registry of backends.

A backend turns a validated spec into running work and answers for it afterwards. The
service is its only caller. Backends are looked up by name; third-party backends register
through the ``workbench.backends`` entry-point group (``name = "package.module:Class"``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import BackendUnavailable

if TYPE_CHECKING:
    from ..config import Settings
    from ..spec import CommonSpec
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


BackendFactory = Callable[["Settings", "Store"], Backend]

_BUILTIN = {
    "local": "workbench.backends.local:LocalBackend",
    "kubernetes": "workbench.backends.kubernetes.backend:KubernetesBackend",
}
_REGISTERED: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make a backend available under ``name`` (tests and plugins)."""
    _REGISTERED[name] = factory


def _load(target: str) -> BackendFactory:
    module, _, attr = target.partition(":")
    factory: BackendFactory = getattr(importlib.import_module(module), attr)
    return factory


def create_backend(name: str, settings: Settings, store: Store) -> Backend:
    """The backend called ``name``.

    Raises:
        BackendUnavailable: no backend by that name is installed.
    """
    if name in _REGISTERED:
        return _REGISTERED[name](settings, store)
    if name in _BUILTIN:
        return _load(_BUILTIN[name])(settings, store)
    for point in entry_points(group="workbench.backends"):
        if point.name == name:
            return _load(point.value)(settings, store)
    known = sorted({*_BUILTIN, *_REGISTERED})
    raise BackendUnavailable(
        f"the {name!r} backend is not available in this installation (available: {', '.join(known)})",
        value=name,
        hint="use --backend local",
    )
