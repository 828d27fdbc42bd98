"""Probes that restart containers, preStop hooks, Recreate, kubectl rollout, HPA/PDB, InferenceService."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from kubernetes.client import ApiException

from tests.k8s import Emulator, run_kubectl
from tests.k8s.helpers import PY, pod, wait_for
from tests.k8s.kserve import GROUP, PLURAL, install_kserve
from tests.k8s.store import Event
from tests.k8s.webapp import SERVER, proxy, replica_sets, rolled_out, service, web


def test_a_failing_liveness_probe_restarts_the_container(
    fast_probes: Emulator, core: kubernetes.client.CoreV1Api
) -> None:
    env = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "VERSION", "value": "v1"},
        {"name": "SICK", "value": "1"},
    ]
    probe = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1, "failureThreshold": 2}
    spec = pod(
        "sick", [PY, "-c", SERVER], container={"env": env, "livenessProbe": probe}, restartPolicy="Always"
    )
    core.create_namespaced_pod("default", spec)

    def restarted() -> bool:
        statuses = core.read_namespaced_pod("sick", "default").status.container_statuses or []
        return bool(statuses and statuses[0].restart_count >= 1)

    wait_for(restarted, timeout=15, what="a restart")
    messages = {
        e.message
        for e in core.list_namespaced_event("default", field_selector="involvedObject.name=sick").items
    }
    assert "Container main failed liveness probe, will be restarted" in messages
    assert any(m.startswith("Liveness probe failed: ") for m in messages)


def test_prestop_runs_before_sigterm(
    fast_probes: Emulator, core: kubernetes.client.CoreV1Api, tmp_path: Path
) -> None:
    stamp = tmp_path / "term"
    code = (
        "import pathlib, signal, sys, time\n"
        f"def term(*_):\n    pathlib.Path({str(stamp)!r}).write_text(repr(time.time())); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, term)\nprint('up', flush=True)\nwhile True: time.sleep(0.01)\n"
    )
    hook = {"preStop": {"exec": {"command": ["sleep", "0.6"]}}}
    core.create_namespaced_pod("default", pod("drain", [PY, "-c", code], container={"lifecycle": hook}))
    wait_for(lambda: core.read_namespaced_pod_log("drain", "default") == "up\n", what="the process")
    pid = fast_probes.pids("drain")["main"]
    deleted = time.time()
    core.delete_namespaced_pod("drain", "default")
    with pytest.raises(ApiException):
        core.read_namespaced_pod("drain", "default")  # gone from the API (and its Endpoints) at once
    wait_for(stamp.exists, timeout=10, what="SIGTERM")
    assert float(stamp.read_text()) - deleted >= 0.55
    wait_for(lambda: pid not in fast_probes.live_pids(), what="the process to end")


def test_recreate_stops_old_pods_before_new_ones(
    fast_probes: Emulator, apps: kubernetes.client.AppsV1Api
) -> None:
    spec = web("re", strategy={"type": "Recreate"})
    apps.create_namespaced_deployment("default", spec)
    wait_for(lambda: rolled_out(apps, "re", "1"), timeout=20, what="revision 1")
    first = replica_sets(apps, "re")["1"].metadata.labels["pod-template-hash"]
    mixed: list[set[str]] = []

    def look(event: Event) -> None:
        if event.key == ("", "pods"):
            hashes = {
                (p["metadata"].get("labels") or {}).get("pod-template-hash")
                for p in fast_probes.store.list(("", "pods"))
            }
            if first in hashes and len(hashes) > 1:
                mixed.append(hashes)

    fast_probes.call(lambda: fast_probes.store.listeners.append(look))
    change = {"name": "main", "env": [{"name": "VERSION", "value": "v2"}]}
    apps.patch_namespaced_deployment(
        "re", "default", {"spec": {"template": {"spec": {"containers": [change]}}}}
    )
    wait_for(lambda: rolled_out(apps, "re", "2"), timeout=20, what="revision 2")
    assert mixed == []


def test_kubectl_rollout_status_history_undo_and_scale(
    fast_probes: Emulator, apps: kubernetes.client.AppsV1Api
) -> None:
    apps.create_namespaced_deployment("default", web("web"))
    done = run_kubectl(fast_probes, "rollout", "status", "deployment/web", "--timeout=20s")
    assert done.returncode == 0 and 'deployment "web" successfully rolled out' in done.stdout
    patch = {
        "metadata": {"annotations": {"kubernetes.io/change-cause": "version 2"}},
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "main", "env": [{"name": "VERSION", "value": "v2"}]}]}
            }
        },
    }
    apps.patch_namespaced_deployment("web", "default", patch)
    assert run_kubectl(fast_probes, "rollout", "status", "deployment/web", "--timeout=20s").returncode == 0
    history = run_kubectl(fast_probes, "rollout", "history", "deployment/web").stdout.split("\n")
    assert [line.split() for line in history[1:4]] == [
        ["REVISION", "CHANGE-CAUSE"],
        ["1", "<none>"],
        ["2", "version", "2"],
    ]
    undo = run_kubectl(fast_probes, "rollout", "undo", "deployment/web")
    assert undo.returncode == 0 and "rolled back" in undo.stdout
    assert run_kubectl(fast_probes, "rollout", "status", "deployment/web", "--timeout=20s").returncode == 0
    assert sorted(replica_sets(apps, "web")) == ["2", "3"]
    scaled = run_kubectl(fast_probes, "scale", "deployment/web", "--replicas=3")
    assert scaled.returncode == 0, scaled.stderr
    wait_for(
        lambda: (
            rolled_out(apps, "web", "3")
            and apps.read_namespaced_deployment("web", "default").status.ready_replicas == 3
        )
    )
    table = run_kubectl(fast_probes, "get", "deployment", "web").stdout.split()
    assert table[5:8] == ["web", "3/3", "3"]


def test_hpa_and_pdb_are_served(
    fast_probes: Emulator, apps: kubernetes.client.AppsV1Api, k8s_client: kubernetes.client.ApiClient
) -> None:
    spec = web("web")
    del spec["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    apps.create_namespaced_deployment("default", spec)
    hpa: dict[str, Any] = {
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "maxReplicas": 4,
        },
    }
    autoscaling = kubernetes.client.AutoscalingV2Api(k8s_client)
    autoscaling.create_namespaced_horizontal_pod_autoscaler("default", hpa)
    got = autoscaling.read_namespaced_horizontal_pod_autoscaler("web", "default")
    assert got.spec.min_replicas == 1 and got.spec.metrics[0].resource.target.average_utilization == 80
    policy = kubernetes.client.PolicyV1Api(k8s_client)
    budget = {
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
    }
    policy.create_namespaced_pod_disruption_budget("default", budget)

    def allowed() -> bool:
        status = policy.read_namespaced_pod_disruption_budget("web", "default").status
        return bool(status and status.expected_pods == 2 and status.current_healthy == 2)

    wait_for(allowed, timeout=15, what="the budget's status")
    status = policy.read_namespaced_pod_disruption_budget("web", "default").status
    assert status.disruptions_allowed == 1 and status.desired_healthy == 1
    assert status.conditions[0].type == "DisruptionAllowed" and status.conditions[0].status == "True"
    bad = {**hpa, "metadata": {"name": "bad"}, "spec": {**hpa["spec"], "maxReplicas": 0, "minReplicas": 2}}
    path = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers"
    code, text = proxy(fast_probes, path, json.dumps(bad).encode())
    assert code == 422 and "must be greater than or equal to `minReplicas`" in text


def test_inference_service_only_with_the_crd(
    fast_probes: Emulator,
    apps: kubernetes.client.AppsV1Api,
    core: kubernetes.client.CoreV1Api,
    k8s_client: kubernetes.client.ApiClient,
) -> None:
    custom = kubernetes.client.CustomObjectsApi(k8s_client)
    with pytest.raises(ApiException) as caught:
        custom.list_namespaced_custom_object(GROUP, "v1beta1", "default", PLURAL)
    assert caught.value.status == 404
    install_kserve(fast_probes)
    container = web("m")["spec"]["template"]["spec"]["containers"][0]
    del container["name"]
    isvc = {
        "apiVersion": f"{GROUP}/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "m", "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"}},
        "spec": {"predictor": {"minReplicas": 1, "maxReplicas": 2, "containers": [container]}},
    }
    custom.create_namespaced_custom_object(GROUP, "v1beta1", "default", PLURAL, isvc)

    def ready() -> Any:
        got = custom.get_namespaced_custom_object(GROUP, "v1beta1", "default", PLURAL, "m")
        conditions = {c["type"]: c["status"] for c in (got.get("status") or {}).get("conditions") or []}
        return got if conditions.get("Ready") == "True" else None

    got = wait_for(ready, timeout=20, what="the InferenceService to be ready")
    assert got["status"]["address"]["url"] == "http://m-predictor.default.svc.cluster.local"
    d = apps.read_namespaced_deployment("m-predictor", "default")
    assert d.spec.template.spec.containers[0].name == "kserve-container"
    assert d.spec.template.metadata.labels["serving.kserve.io/inferenceservice"] == "m"
    assert (
        kubernetes.client.AutoscalingV2Api(k8s_client)
        .read_namespaced_horizontal_pod_autoscaler("m-predictor", "default")
        .spec.max_replicas
        == 2
    )
    code, text = proxy(
        fast_probes, "/api/v1/namespaces/default/services/m-predictor:80/proxy/v2/health/ready"
    )
    assert code == 200 and text.startswith("v1 m-predictor-")
    custom.delete_namespaced_custom_object(GROUP, "v1beta1", "default", PLURAL, "m")
    wait_for(lambda: not apps.list_namespaced_deployment("default").items, what="the predictor to go")


def test_deleting_a_deployment_and_its_service_removes_what_they_made(
    k8s: Emulator, apps: kubernetes.client.AppsV1Api, core: kubernetes.client.CoreV1Api
) -> None:
    spec = web("gone")
    del spec["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    apps.create_namespaced_deployment("default", spec)
    core.create_namespaced_service("default", service("gone"))
    wait_for(lambda: rolled_out(apps, "gone", "1"), timeout=20, what="the deployment")
    discovery = kubernetes.client.DiscoveryV1Api(core.api_client)
    wait_for(lambda: discovery.list_namespaced_endpoint_slice("default").items, what="a slice")
    apps.delete_namespaced_deployment("gone", "default")
    core.delete_namespaced_service("gone", "default")
    wait_for(lambda: not apps.list_namespaced_replica_set("default").items, what="the replica sets to go")
    wait_for(lambda: not core.list_namespaced_pod("default").items, what="the pods to go")
    wait_for(lambda: not core.list_namespaced_endpoints("default").items, what="the endpoints to go")
    wait_for(lambda: not discovery.list_namespaced_endpoint_slice("default").items, what="the slices to go")
    assert apps.list_namespaced_deployment("default").items == []
    assert "gone" not in [svc.metadata.name for svc in core.list_namespaced_service("default").items]


def test_scaling_mid_rollout_is_proportional(
    fast_probes: Emulator, apps: kubernetes.client.AppsV1Api
) -> None:
    container = {"name": "main", "image": "busybox:1.36", "command": ["sleep", "60"]}
    spec = {
        "metadata": {"name": "prop"},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "prop"}},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": {"app": "prop"}}, "spec": {"containers": [container]}},
        },
    }
    apps.create_namespaced_deployment("default", spec)
    wait_for(lambda: rolled_out(apps, "prop", "1"), timeout=20, what="revision 1")
    never = {"name": "main", "readinessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1}}
    apps.patch_namespaced_deployment(
        "prop", "default", {"spec": {"template": {"spec": {"containers": [never]}}}}
    )

    def sizes() -> dict[str, int]:
        return {revision: rs.spec.replicas for revision, rs in replica_sets(apps, "prop").items()}

    wait_for(lambda: sizes() == {"1": 4, "2": 1}, what="the surge pod")
    apps.patch_namespaced_deployment("prop", "default", {"spec": {"replicas": 8}})
    # 9 allowed (8 + maxSurge 1), 4 to add: 4 * 9/5 rounds to 7 for the old set, 1 * 9/5 to 2 for the new one
    wait_for(lambda: sizes() == {"1": 7, "2": 2}, what="proportional scaling")
    time.sleep(0.3)
    assert sizes() == {"1": 7, "2": 2}
    rs = replica_sets(apps, "prop")["1"]
    assert rs.metadata.annotations["deployment.kubernetes.io/desired-replicas"] == "8"
    assert rs.metadata.annotations["deployment.kubernetes.io/max-replicas"] == "9"
