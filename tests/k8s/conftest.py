"""The emulator's fixtures for this directory (see fixtures.py for using them elsewhere)."""

from __future__ import annotations

import kubernetes
import pytest

from tests.k8s.fixtures import fast_probes, k8s, k8s_client, kubeconfig  # noqa: F401


@pytest.fixture
def core(k8s_client: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:  # noqa: F811
    return kubernetes.client.CoreV1Api(k8s_client)


@pytest.fixture
def batch(k8s_client: kubernetes.client.ApiClient) -> kubernetes.client.BatchV1Api:  # noqa: F811
    return kubernetes.client.BatchV1Api(k8s_client)


@pytest.fixture
def apps(k8s_client: kubernetes.client.ApiClient) -> kubernetes.client.AppsV1Api:  # noqa: F811
    return kubernetes.client.AppsV1Api(k8s_client)
