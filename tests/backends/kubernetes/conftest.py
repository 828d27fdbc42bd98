"""The API emulator's fixtures, and a service whose default backend is that emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.k8s.emulator import Emulator
from tests.k8s.fixtures import k8s, k8s_client, kubeconfig  # noqa: F401
from workbench.config import load_settings
from workbench.service import Service


@pytest.fixture
def kube_env(kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    """WORKBENCH_* settings that point the kubernetes backend at the emulator (and make it the default)."""
    monkeypatch.setenv("WORKBENCH_KUBERNETES__KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("WORKBENCH_KUBERNETES__RETRY_BACKOFF", "0.05")
    monkeypatch.setenv("WORKBENCH_KUBERNETES__REQUEST_TIMEOUT", "5")
    monkeypatch.setenv("WORKBENCH_BACKEND", "kubernetes")
    return kubeconfig


@pytest.fixture
def kube(kube_env: Path, k8s: Emulator) -> Iterator[Service]:  # noqa: F811
    svc = Service(load_settings())
    yield svc
    for workload in svc.store.list(status=["pending", "running"]):
        svc.cancel(workload.id)
    svc.close()
