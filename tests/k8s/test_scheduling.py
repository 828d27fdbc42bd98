"""The emulator's scheduler (nodes, GPUs, selectors, taints) and custom controllers."""

from __future__ import annotations

from typing import Any

import kubernetes

from tests.k8s import Emulator
from tests.k8s.helpers import PY, phase, pod, wait_for


def test_gpu_pod_waits_for_a_gpu_node(k8s: Emulator, core: kubernetes.client.CoreV1Api) -> None:
    gpu = {"limits": {"nvidia.com/gpu": "1"}}
    core.create_namespaced_pod(
        "default", pod("trainer", [PY, "-c", "print('on gpu')"], container={"resources": gpu})
    )

    def unschedulable() -> Any:
        conds = core.read_namespaced_pod("trainer", "default").status.conditions or []
        return next((c for c in conds if c.type == "PodScheduled" and c.status == "False"), None)

    cond = wait_for(unschedulable)
    message = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
    assert (cond.reason, cond.message) == ("Unschedulable", message)
    events = core.list_namespaced_event("default", field_selector="involvedObject.name=trainer").items
    failed = [e for e in events if e.reason == "FailedScheduling"]
    assert len(failed) == 1 and failed[0].type == "Warning" and failed[0].message == message
    assert core.read_namespaced_pod("trainer", "default").status.phase == "Pending"
    k8s.set_nodes(
        [
            {"name": "cpu-1", "allocatable": {"cpu": "8", "memory": "32Gi"}},
            {"name": "gpu-1", "allocatable": {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "4"}},
        ]
    )
    wait_for(lambda: core.read_namespaced_pod("trainer", "default").status.phase == "Succeeded")
    assert core.read_namespaced_pod("trainer", "default").spec.node_name == "gpu-1"
    assert core.read_namespaced_pod_log("trainer", "default") == "on gpu\n"


def test_scheduling_respects_selectors_and_taints(k8s: Emulator, core: kubernetes.client.CoreV1Api) -> None:
    taint = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    k8s.set_nodes([
        {"name": "cpu-1", "allocatable": {"cpu": "4", "memory": "8Gi"}, "labels": {"pool": "cpu"}},
        {"name": "gpu-1", "allocatable": {"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": "1"},
         "labels": {"pool": "gpu"}, "taints": [taint]},
    ])  # fmt: skip
    core.create_namespaced_pod("default", pod("picky", [PY, "-c", "pass"], nodeSelector={"pool": "gpu"}))

    def message() -> str | None:
        conds = core.read_namespaced_pod("picky", "default").status.conditions or []
        return next((c.message for c in conds if c.type == "PodScheduled" and c.status == "False"), None)

    assert wait_for(message) == (
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {nvidia.com/gpu: present}."
    )
    tolerations = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    core.create_namespaced_pod(
        "default", pod("tolerant", [PY, "-c", "pass"], nodeSelector={"pool": "gpu"}, tolerations=tolerations)
    )
    wait_for(lambda: phase(core, "tolerant") == "Succeeded")
    assert core.read_namespaced_pod("tolerant", "default").spec.node_name == "gpu-1"
    big = {"resources": {"requests": {"cpu": "3"}}}
    core.create_namespaced_pod(
        "default", pod("big-1", ["sleep", "30"], container=big, nodeSelector={"pool": "cpu"})
    )
    core.create_namespaced_pod(
        "default", pod("big-2", ["sleep", "30"], container=big, nodeSelector={"pool": "cpu"})
    )
    wait_for(lambda: phase(core, "big-1") == "Running")

    def unschedulable() -> str | None:  # the scheduler has tried big-2 and said why it waits
        conditions = core.read_namespaced_pod("big-2", "default").status.conditions or []
        return next((c.message for c in conditions if c.reason == "Unschedulable"), None)

    assert "Insufficient cpu" in wait_for(unschedulable)
    assert phase(core, "big-2") == "Pending"
    core.delete_namespaced_pod("big-1", "default", grace_period_seconds=0)
    wait_for(lambda: phase(core, "big-2") == "Running", what="big-2 to fit once big-1 is gone")


def test_a_custom_controller_runs_on_the_loop(k8s: Emulator, k8s_client: kubernetes.client.ApiClient) -> None:
    """add_controller: a stand-in operator turning a custom object into a pod that runs."""
    k8s.add_crd("kubernetes.dask.org", "v1", "daskclusters", "DaskCluster")
    clusters = k8s.registry.find("kubernetes.dask.org", "v1", "daskclusters")
    pods = k8s.registry.find("", "v1", "pods")
    assert clusters is not None and pods is not None

    def operator(emu: Emulator) -> None:
        for obj in emu.store.list(clusters.key):
            if "status" in obj:
                continue
            meta = obj["metadata"]
            owner = {
                "apiVersion": obj["apiVersion"],
                "kind": obj["kind"],
                "name": meta["name"],
                "uid": meta["uid"],
            }
            code = f"print('scheduler for', {meta['name']!r})"
            spec = pod(f"{meta['name']}-scheduler", [PY, "-c", code])
            spec["metadata"]["ownerReferences"] = [owner]
            emu.cluster.create(pods, meta["namespace"], spec)
            emu.cluster.write(clusters, {**obj, "status": {"phase": "Created"}})

    k8s.add_controller(operator)
    custom = kubernetes.client.CustomObjectsApi(k8s_client)
    dc = {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskCluster",
        "metadata": {"name": "dc"},
        "spec": {},
    }
    custom.create_namespaced_custom_object("kubernetes.dask.org", "v1", "default", "daskclusters", dc)
    core = kubernetes.client.CoreV1Api(k8s_client)
    wait_for(lambda: core.list_namespaced_pod("default").items and phase(core, "dc-scheduler") == "Succeeded")
    assert core.read_namespaced_pod_log("dc-scheduler", "default") == "scheduler for dc\n"
    got = custom.get_namespaced_custom_object("kubernetes.dask.org", "v1", "default", "daskclusters", "dc")
    assert got["status"] == {"phase": "Created"}
    custom.delete_namespaced_custom_object("kubernetes.dask.org", "v1", "default", "daskclusters", "dc")
    wait_for(lambda: not core.list_namespaced_pod("default").items, what="the owned pod to be collected")
