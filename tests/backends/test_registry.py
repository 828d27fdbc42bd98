"""The registry and the abilities each backend declares (the service asks, never guesses)."""

from __future__ import annotations

import pytest

from workbench.backends.base import (
    DaskControl,
    Diagnosis,
    Discovery,
    Manifests,
    Probing,
    ability,
    backend_names,
    create_backend,
)
from workbench.errors import BackendUnavailable, SpecError
from workbench.service import Service


def test_each_backend_has_exactly_the_abilities_it_declares(service: Service) -> None:
    assert backend_names() == ["kubernetes", "local"]
    local, kube = service.backend("local"), service.backend("kubernetes")
    assert ability(local, DaskControl) is local
    for protocol in (Diagnosis, Probing):  # class-level: no store needed (it may be what is broken)
        assert ability(type(local), protocol) is type(local)
    for protocol in (Discovery, Manifests):  # nothing to discover locally; no manifests of its own
        assert ability(local, protocol) is None
    for protocol in (DaskControl, Discovery, Manifests, Diagnosis, Probing):
        assert ability(kube, protocol) is kube
    assert ability(None, Probing) is None


def test_the_service_refuses_what_a_workload_s_backend_cannot_do(service: Service) -> None:
    final = service.wait(service.launch({"kind": "pod", "code": "pass"}).id, timeout=60)
    with pytest.raises(SpecError, match="scaling applies to Dask clusters"):
        service.scale(final.id, 2)
    gpus = service.settings.local_gpus
    assert service.probe("local", 1.0)["available"] is True
    assert gpus is None or service.probe("local", 1.0)["gpus"] == list(gpus)
    assert next(c.what for c in service.diagnose()) == "local GPUs"


def test_an_unknown_backend_is_one_line(service: Service) -> None:
    with pytest.raises(BackendUnavailable, match="'cloud' backend is not available"):
        create_backend("cloud", service.settings, service.store)
    assert service.probe("cloud", 1.0)["available"] is False
