"""Pytest fixtures and helpers for the emulator.

Use them from any test directory by importing the fixtures into that directory's conftest.py
(pytest only honours ``pytest_plugins`` in the rootdir conftest)::

    from tests.k8s.fixtures import k8s, k8s_client, kubeconfig  # noqa: F401

``k8s`` is a started :class:`~tests.k8s.emulator.Emulator` (one per test, stopped afterwards;
the test errors if the emulator itself hit an internal error); ``fast_probes`` is the same
emulator with ``probe_scale = 0.1`` (readiness/liveness probes ten times faster). ``k8s_client`` is a
``kubernetes.client.ApiClient`` for it, ``kubeconfig`` the path of a kubeconfig file whose
context ``emulator`` (namespace ``default``) points at it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
import yaml

from .emulator import Emulator

CONTEXT = "emulator"
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


def api_client(emulator: Emulator) -> kubernetes.client.ApiClient:
    """An ApiClient talking to ``emulator`` (plain HTTP, no auth)."""
    config = kubernetes.client.Configuration()
    config.host = emulator.url
    return kubernetes.client.ApiClient(config)


def write_kubeconfig(
    emulator: Emulator, path: str | Path, *, context: str = CONTEXT, namespace: str = "default"
) -> Path:
    """A kubeconfig whose ``context`` (current) points at ``emulator``; for load_kube_config."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": emulator.url}}],
        "users": [{"name": context, "user": {"token": "emulator"}}],
        "contexts": [
            {"name": context, "context": {"cluster": context, "user": context, "namespace": namespace}}
        ],
        "current-context": context,
        "preferences": {},
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(doc))
    return target


def run_kubectl(
    emulator: Emulator, *args: str, stdin: str | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run kubectl against ``emulator`` with a throwaway kubeconfig and discovery cache."""
    with tempfile.TemporaryDirectory(prefix="kubectl-") as tmp:
        config = write_kubeconfig(emulator, Path(tmp) / "config")
        env = {**os.environ, "KUBECONFIG": str(config), "HOME": tmp}
        return subprocess.run(
            [KUBECTL, f"--cache-dir={tmp}/cache", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )


@pytest.fixture
def k8s() -> Iterator[Emulator]:
    """A started emulator, stopped (every pod process killed) after the test."""
    emulator = Emulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()
    if emulator.internal_errors:
        pytest.fail("the Kubernetes emulator hit internal errors:\n" + "\n".join(emulator.internal_errors))


@pytest.fixture
def fast_probes(k8s: Emulator) -> Emulator:
    """The ``k8s`` emulator with probes ten times faster (a 1 s period takes 0.1 s)."""
    k8s.probe_scale = 0.1
    return k8s


@pytest.fixture
def k8s_client(k8s: Emulator) -> Iterator[kubernetes.client.ApiClient]:
    client = api_client(k8s)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def kubeconfig(k8s: Emulator, tmp_path: Path) -> Path:
    return write_kubeconfig(k8s, tmp_path / "kubeconfig")
