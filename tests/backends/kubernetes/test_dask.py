"""`dask` workloads on the kubernetes backend, end to end against the API emulator.

The real `kubernetes` client creates a DaskCluster; the operator stand-in (tests/k8s/dask_operator.py)
makes its scheduler Service, scheduler pod and worker pods, and the process kubelet runs them as
real `dask scheduler` / `dask worker` processes, so a real `distributed.Client` computes on them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import assert_nothing_created
from tests.k8s.dask_operator import KINDS, DaskOperator, install_dask_operator
from tests.k8s.emulator import Emulator
from workbench.backends.kubernetes.dask import INSTALL_COMMAND, address_info, observe_cluster
from workbench.backends.kubernetes.status import Observed
from workbench.errors import BackendUnavailable, Conflict, PermissionDenied, SpecError, Timeout
from workbench.service import Service

GROUP = "kubernetes.dask.org"


def eventually(check: Callable[[], Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def n_workers(client: Any) -> int:
    return len(client.scheduler_info(n_workers=-1)["workers"])


def dask_objects(k8s: Emulator, name: str) -> list[object]:
    return [
        k8s.get("daskclusters", name, group=GROUP),
        k8s.get("daskautoscalers", name, group=GROUP),
        k8s.get("daskworkergroups", f"{name}-default", group=GROUP),
        k8s.get("services", f"{name}-scheduler"),
    ]


@pytest.fixture
def operator(k8s: Emulator) -> DaskOperator:
    return install_dask_operator(k8s)


def test_cluster_computes_scales_adapts_and_cancels(
    kube: Service, k8s: Emulator, operator: DaskOperator
) -> None:
    import dask.array as da
    import numpy as np

    workload = kube.launch({"kind": "dask", "workers": 2, "name": "dk", "backend": "kubernetes"})
    assert (workload.kind, workload.backend, workload.status) == ("dask", "kubernetes", "pending")
    cluster = k8s.get("daskclusters", "dk", group=GROUP)
    assert cluster is not None and cluster["spec"]["worker"]["replicas"] == 2
    assert cluster["metadata"]["labels"]["workbench.jupyter.org/kind"] == "dask"

    client = kube.dask_client("dk", timeout=60)
    try:
        eventually(lambda: n_workers(client) == 2)
        x = da.arange(1_000_000, chunks=100_000)
        assert client.compute((x * 2).sum()).result() == 2 * np.arange(1_000_000).sum()
        record = kube.get("dk")
        assert record.status == "running" and record.message == "2/2 workers running"
        port = k8s.get("services", "dk-scheduler")["spec"]["ports"][0]["port"]  # type: ignore[index]
        assert record.info["address"] == f"tcp://127.0.0.1:{port}"
        assert record.info["dashboard"].startswith("http://127.0.0.1:")
        assert record.info["dashboard"].endswith("/status")

        kube.scale("dk", 3)
        eventually(lambda: n_workers(client) == 3)
        kube.scale("dk", 1)
        eventually(lambda: n_workers(client) == 1)
        assert kube.get("dk").info["requested_workers"] == 1
        group = k8s.get("daskworkergroups", "dk-default", group=GROUP)
        assert group is not None and group["spec"]["worker"]["replicas"] == 1

        adapted = kube.adapt("dk", 2, 4)
        assert adapted.info["adapt"] == [2, 4]
        autoscaler = k8s.get("daskautoscalers", "dk", group=GROUP)
        assert autoscaler is not None
        assert autoscaler["spec"] == {"cluster": "dk", "minimum": 2, "maximum": 4}
        assert autoscaler["metadata"]["labels"]["workbench.jupyter.org/id"] == "dk"
        eventually(lambda: n_workers(client) == 2)  # below its minimum: the autoscaler adds one
        kube.adapt("dk", 1, 3)  # a second call changes the autoscaler
        assert k8s.get("daskautoscalers", "dk", group=GROUP)["spec"]["maximum"] == 3  # type: ignore[index]
        kube.scale("dk", 2)  # a fixed count ends adaptivity
        assert k8s.get("daskautoscalers", "dk", group=GROUP) is None
        assert kube.get("dk").info["adapt"] is None
    finally:
        client.close()

    assert "Scheduler at:" in "".join(kube.logs("dk"))
    assert k8s.live_pids()
    assert kube.cancel("dk").status == "cancelled"
    eventually(lambda: dask_objects(k8s, "dk") == [None] * 4)
    eventually(lambda: not k8s.live_pids())
    with pytest.raises(Conflict, match="dk is cancelled"):
        kube.scale("dk", 2)
    kube.delete("dk")
    assert kube.store.list() == []


def test_adapt_at_launch_creates_the_autoscaler(kube: Service, k8s: Emulator, operator: DaskOperator) -> None:
    # GPU workers that no node can hold (nodes may not be listed, so nothing refuses them early):
    # only the scheduler runs, and the record says why the workers wait
    k8s.deny("list", "nodes")
    kube.launch({"kind": "dask", "name": "gpu-dask", "adapt": "1:3", "resources": {"gpus": 1}})
    autoscaler = k8s.get("daskautoscalers", "gpu-dask", group=GROUP)
    assert autoscaler is not None and autoscaler["spec"]["minimum"] == 1
    record = kube.dask_address("gpu-dask", timeout=60)
    assert record.status == "running"
    assert record.info["adapt"] == [1, 3]
    expected = (
        "0 workers running (adaptive, 1 to 3); "
        "a worker waits: 0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
    )
    eventually(lambda: kube.get("gpu-dask").message == expected)
    eventually(lambda: "Scheduler at:" in "".join(kube.logs("gpu-dask")))  # the scheduler's own output
    kube.store.delete("gpu-dask")  # as if launched from another machine: found again by its labels
    found = {w.id: w for w in kube.list()}["gpu-dask"]
    assert (found.kind, found.backend, found.status) == ("dask", "kubernetes", "running")
    assert found.spec["adapt"] == {"minimum": 1, "maximum": 3}
    # deleted behind workbench's back (as the operator does after --idle-timeout): it ended
    k8s.call(
        lambda: k8s.cluster.delete(
            k8s.registry.by_key((GROUP, "daskclusters")), "default", "gpu-dask", propagation="Background"
        )
    )
    eventually(lambda: kube.get("gpu-dask").status == "succeeded", timeout=15)
    assert kube.get("gpu-dask").message.startswith("the DaskCluster is gone")
    eventually(lambda: not k8s.live_pids())


def test_without_the_operator_the_error_says_how_to_install_it(kube: Service, k8s: Emulator) -> None:
    with pytest.raises(BackendUnavailable) as info:
        kube.launch({"kind": "dask", "workers": 2, "name": "no-operator"})
    text = str(info.value)
    assert "the Dask operator's CRDs are missing" in text
    assert INSTALL_COMMAND in text
    assert_nothing_created(kube)
    assert k8s.count("POST", "daskclusters") == 1  # tried once, nothing left behind


def test_crds_without_a_running_operator_time_out_saying_so(kube: Service, k8s: Emulator) -> None:
    for plural, kind in KINDS:
        k8s.add_crd(GROUP, "v1", plural, kind)
    kube.launch({"kind": "dask", "name": "no-controller"})
    with pytest.raises(Timeout) as info:
        kube.dask_address("no-controller", timeout=1)
    assert "did not start within 1s: waiting for the Dask operator to create the scheduler" in str(info.value)


def test_an_autoscaler_that_cannot_be_created_rolls_the_cluster_back(
    kube: Service, k8s: Emulator, operator: DaskOperator
) -> None:
    k8s.deny("create", "daskautoscalers", GROUP)
    with pytest.raises(PermissionDenied, match="not allowed to create daskautoscalers"):
        kube.launch({"kind": "dask", "name": "rollback", "adapt": "1:2"})
    assert_nothing_created(kube)
    eventually(lambda: dask_objects(k8s, "rollback") == [None] * 4)
    eventually(lambda: not k8s.live_pids())


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"workers": 0}, "--workers"),
        ({"adapt": "3:1"}, "MIN above MAX"),
        ({"name": "9lives"}, "must start with a letter"),
        ({"queue": "team-a"}, "Kueue does not admit DaskClusters"),
        ({"timeout": "1h"}, "--timeout does not apply"),
        ({"env": {"DASK_SCHEDULER_ADDRESS": "tcp://x:1"}}, "set by the Dask operator"),
        ({"resources": {"gpus": 2}}, "asks for 2 nvidia.com/gpu per pod"),
    ],
)
def test_bad_input_starts_nothing(
    kube: Service, k8s: Emulator, operator: DaskOperator, fields: dict[str, Any], match: str
) -> None:
    with pytest.raises(SpecError, match=match):
        kube.launch({"kind": "dask", **fields})
    assert_nothing_created(kube)
    assert k8s.count("POST") == 0


def test_bad_scale_and_adapt_are_refused(kube: Service, k8s: Emulator, operator: DaskOperator) -> None:
    k8s.deny("list", "nodes")
    kube.launch({"kind": "dask", "name": "bounds", "resources": {"gpus": 1}})  # nothing but a scheduler runs
    k8s.reset_requests()  # the launch patched its NetworkPolicy (owned by the DaskCluster)
    with pytest.raises(SpecError, match="workers -1 must be a whole number from 0 to 1000"):
        kube.scale("bounds", -1)
    with pytest.raises(SpecError, match="MIN:MAX"):
        kube.adapt("bounds", 3, 1)
    assert k8s.count("PATCH") == 0


# -- status and address from the objects (pure) ------------------------------------------------------------


def _svc(service_type: str, ingress: list[dict[str, str]] | None = None) -> dict[str, Any]:
    ports = [{"name": "tcp-comm", "port": 8786}, {"name": "http-dashboard", "port": 8787}]
    status = {"loadBalancer": {"ingress": ingress}} if ingress else {"loadBalancer": {}}
    return {
        "metadata": {"name": "dk-scheduler"},
        "spec": {"type": service_type, "ports": ports},
        "status": status,
    }


@pytest.mark.parametrize(
    ("service", "host"),
    [
        (
            _svc("ClusterIP"),
            "dk-scheduler.ml.svc.cluster.local",
        ),  # what a pod in the cluster (JupyterHub) uses
        (_svc("LoadBalancer", [{"ip": "203.0.113.7"}]), "203.0.113.7"),
        (_svc("LoadBalancer", [{"hostname": "dk.elb.example.com"}]), "dk.elb.example.com"),
    ],
)
def test_address_from_the_scheduler_service(service: dict[str, Any], host: str) -> None:
    assert address_info(service, "ml") == {
        "address": f"tcp://{host}:8786",
        "dashboard": f"http://{host}:8787/status",
    }


def _pod(component: str, phase: str, **status: Any) -> dict[str, Any]:
    labels = {"dask.org/component": component}
    return {
        "metadata": {"labels": labels, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "status": {"phase": phase, **status},
    }


def test_status_in_plain_words() -> None:
    def cluster(phase: str | None) -> dict[str, Any]:
        return {"spec": {"worker": {"replicas": 2}}, "status": {"phase": phase} if phase else {}}

    unschedulable = {
        "conditions": [{"type": "PodScheduled", "status": "False", "message": "0/3 nodes are available"}]
    }
    assert observe_cluster(None, []) is None
    assert observe_cluster(cluster("Error"), []).status == "failed"  # type: ignore[union-attr]
    assert observe_cluster(cluster(None), []) == Observed(
        "pending", "waiting for the Dask operator to create the scheduler"
    )
    waiting = observe_cluster(cluster("Pending"), [_pod("scheduler", "Pending", **unschedulable)])
    assert waiting == Observed("pending", "scheduler: 0/3 nodes are available")
    running = observe_cluster(cluster("Running"), [_pod("scheduler", "Running"), _pod("worker", "Running")])
    assert running == Observed("running", "1/2 workers running")
    adaptive = observe_cluster(cluster("Running"), [_pod("scheduler", "Running")], [0, 4])
    assert adaptive == Observed("running", "0 workers running (adaptive, 0 to 4)")
