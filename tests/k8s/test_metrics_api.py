"""metrics.k8s.io on the emulator (tests/k8s/metrics.py), through the real client and kubectl top."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import kubernetes
import pytest
from kubernetes.client import ApiException

from tests.k8s.emulator import Emulator
from tests.k8s.fixtures import run_kubectl
from tests.k8s.helpers import PY, pod, wait_for
from tests.k8s.metrics import cpu_quantity, duration, install_metrics, memory_quantity
from workbench.units import parse_quantity

MiB = 2**20
#: holds 100 MiB and burns a core until killed
BUSY = "b = bytearray(100 * 2**20)\nfor i in range(0, len(b), 4096): b[i] = 1\nwhile True: pass"
GROUP, VERSION = "metrics.k8s.io", "v1beta1"


def groups(client: kubernetes.client.ApiClient) -> list[str]:
    return [g.name for g in kubernetes.client.ApisApi(client).get_api_versions().groups]


def test_quantities_and_windows_are_written_as_metrics_server_does() -> None:
    assert [cpu_quantity(n) for n in (0, 2 * 10**9, 250 * 10**6, 1500, 1234567)] == [
        "0", "2", "250m", "1500n", "1234567n",
    ]  # fmt: skip
    assert [memory_quantity(n) for n in (0, 300 * MiB, 1024 * 1000, 1000)] == ["0", "300Mi", "1000Ki", "1000"]
    assert [duration(s) for s in (15.012, 0.5, 60.25)] == ["15.012s", "0.5s", "1m0.25s"]


def test_pod_and_node_metrics_from_the_pods_processes(
    k8s: Emulator, k8s_client: kubernetes.client.ApiClient, core: kubernetes.client.CoreV1Api
) -> None:
    custom = kubernetes.client.CustomObjectsApi(k8s_client)
    assert GROUP not in groups(k8s_client)  # no metrics-server: no API
    with pytest.raises(ApiException) as missing:
        custom.list_namespaced_custom_object(GROUP, VERSION, "default", "pods")
    assert missing.value.status == 404
    assert "Metrics API not available" in run_kubectl(k8s, "top", "pod").stderr

    install_metrics(k8s, period=0.3)
    assert GROUP in groups(k8s_client)
    resources = custom.get_api_resources(GROUP, VERSION).resources
    assert {(r.name, r.kind, r.namespaced, tuple(r.verbs)) for r in resources} == {
        ("pods", "PodMetrics", True, ("get", "list")),
        ("nodes", "NodeMetrics", False, ("get", "list")),
    }
    core.create_namespaced_pod("default", pod("busy", [PY, "-c", BUSY], {"app": "busy"}))
    core.create_namespaced_pod("default", pod("idle", [PY, "-c", "import time; time.sleep(60)"]))

    def busy() -> dict[str, Any] | None:
        items = custom.list_namespaced_custom_object(
            GROUP, VERSION, "default", "pods", label_selector="app=busy"
        )
        found = items["items"]
        return found[0] if found and parse_quantity(found[0]["containers"][0]["usage"]["cpu"]) > 0.2 else None

    metrics = wait_for(busy, timeout=30, what="PodMetrics of the busy pod")
    assert metrics["metadata"]["labels"] == {"app": "busy"} and metrics["window"].endswith("s")
    (container,) = metrics["containers"]
    assert container["name"] == "main" and parse_quantity(container["usage"]["memory"]) >= 100 * MiB
    one = custom.get_namespaced_custom_object(GROUP, VERSION, "default", "pods", "busy")
    assert one["kind"] == "PodMetrics" and one["metadata"]["name"] == "busy"
    every = lambda: custom.list_cluster_custom_object(GROUP, VERSION, "pods")["items"]  # noqa: E731
    wait_for(lambda: len(every()) == 2, what="both pods' metrics")
    (node,) = custom.list_cluster_custom_object(GROUP, VERSION, "nodes")["items"]
    assert node["metadata"]["name"] == "node-1" and parse_quantity(node["usage"]["memory"]) >= 100 * MiB
    top = run_kubectl(k8s, "top", "pod", "busy", "--containers")
    assert top.returncode == 0 and top.stdout.split()[4:6] == ["busy", "main"], top.stdout + top.stderr

    with pytest.raises(ApiException) as unknown:
        custom.get_namespaced_custom_object(GROUP, VERSION, "default", "pods", "nobody")
    assert unknown.value.status == 404
    with pytest.raises(urllib.error.HTTPError) as watch:
        urllib.request.urlopen(f"{k8s.url}/apis/{GROUP}/{VERSION}/namespaces/default/pods?watch=true")
    assert watch.value.code == 405
    core.delete_namespaced_pod("busy", "default", grace_period_seconds=0)
    wait_for(
        lambda: [i["metadata"]["name"] for i in every()] == ["idle"], what="the deleted pod's metrics gone"
    )
    k8s.deny("list", "pods", GROUP)
    with pytest.raises(ApiException) as denied:
        custom.list_namespaced_custom_object(GROUP, VERSION, "default", "pods")
    assert denied.value.status == 403
