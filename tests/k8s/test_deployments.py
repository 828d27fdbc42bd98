"""Deployments, ReplicaSets, probes, pod IPs, Services' endpoints and the service proxy."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from kubernetes.client import ApiException

from tests.k8s import Emulator
from tests.k8s.apps import fenceposts, scaled_value, template_hash
from tests.k8s.helpers import wait_for
from tests.k8s.replicasets import deletion_order
from tests.k8s.store import Event
from tests.k8s.webapp import condition, proxy, ready_ips, replica_sets, rolled_out, service, web


@pytest.fixture
def watch_ready(fast_probes: Emulator) -> Iterator[list[int]]:
    """Ready pods and ready endpoint addresses of app=web after every change of the store."""
    seen: list[int] = []

    def count(event: Event) -> None:
        if event.key == ("", "pods"):
            pods = fast_probes.store.list(("", "pods"), "default")
            seen.append(
                sum(
                    1
                    for p in pods
                    if (p["metadata"].get("labels") or {}).get("app") == "web"
                    for c in (p.get("status") or {}).get("conditions") or []
                    if c["type"] == "Ready" and c["status"] == "True"
                )
            )
        elif event.key == ("", "endpoints") and event.obj["metadata"]["name"] == "web":
            seen.append(sum(len(s.get("addresses") or []) for s in event.obj.get("subsets") or []))

    fast_probes.call(lambda: fast_probes.store.listeners.append(count))
    yield seen
    fast_probes.call(lambda: fast_probes.store.listeners.remove(count))


def test_fenceposts_round_as_kubernetes_does() -> None:
    assert scaled_value("25%", 2, True) == 1 and scaled_value("25%", 2, False) == 0
    assert scaled_value("30%", 10, True) == 3 and scaled_value(3, 10, False) == 3
    surge_only = {
        "spec": {"replicas": 2, "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}}
    }
    assert fenceposts(surge_only) == (1, 0)
    both_zero = {
        "spec": {"replicas": 3, "strategy": {"rollingUpdate": {"maxSurge": "10%", "maxUnavailable": "10%"}}}
    }
    assert fenceposts(both_zero) == (1, 0)
    none = {"spec": {"replicas": 3, "strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "10%"}}}}
    assert fenceposts(none) == (0, 1)
    digest = template_hash({"spec": {"containers": [{"name": "a"}]}})
    assert digest == template_hash(
        {"metadata": {"creationTimestamp": None}, "spec": {"containers": [{"name": "a"}]}}
    )
    assert set(digest) <= set("bcdfghjklmnpqrstvwxz2456789") and digest != template_hash({"spec": {}})


def test_surplus_pods_go_unscheduled_then_not_ready_first() -> None:
    def pod(name: str, node: str | None, ready: bool, cost: str = "0") -> dict[str, Any]:
        conditions = [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
        return {
            "metadata": {
                "name": name,
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "annotations": {"controller.kubernetes.io/pod-deletion-cost": cost},
            },
            "spec": {"nodeName": node} if node else {},
            "status": {"phase": "Running" if node else "Pending", "conditions": conditions if ready else []},
        }

    pods = [
        pod("ready", "n", True),
        pod("cheap", "n", True, "-5"),
        pod("unready", "n", False),
        pod("new", None, False),
    ]
    assert [p["metadata"]["name"] for p in deletion_order(pods, pods)] == ["new", "unready", "cheap", "ready"]


def test_deployment_serves_through_its_service(
    fast_probes: Emulator, apps: kubernetes.client.AppsV1Api, core: kubernetes.client.CoreV1Api
) -> None:
    apps.create_namespaced_deployment("default", web("web"))
    core.create_namespaced_service("default", service("web"))
    wait_for(lambda: rolled_out(apps, "web", "1"), timeout=20, what="the deployment to be available")
    d = apps.read_namespaced_deployment("web", "default")
    assert (
        condition(d, "Available").status == "True"
        and condition(d, "Available").reason == "MinimumReplicasAvailable"
    )
    assert d.status.ready_replicas == 2
    (rs,) = replica_sets(apps, "web").values()
    digest = rs.metadata.labels["pod-template-hash"]
    assert (
        rs.metadata.name == f"web-{digest}" and rs.spec.selector.match_labels["pod-template-hash"] == digest
    )
    assert rs.metadata.owner_references[0].kind == "Deployment" and rs.metadata.owner_references[0].controller
    pods = core.list_namespaced_pod("default", label_selector="app=web").items
    ips = sorted(p.status.pod_ip for p in pods)
    assert len(set(ips)) == 2 and all(ip.startswith("127.") and ip != "127.0.0.1" for ip in ips)
    assert all(p.metadata.owner_references[0].name == rs.metadata.name for p in pods)
    assert all(p.status.container_statuses[0].ready for p in pods)
    wait_for(lambda: ready_ips(core, "web") == ips, what="the endpoints")
    ep = core.read_namespaced_endpoints("web", "default")
    assert ep.subsets[0].ports[0].port == 8080 and ep.subsets[0].ports[0].name == "http"
    slices = kubernetes.client.DiscoveryV1Api(core.api_client).list_namespaced_endpoint_slice(
        "default", label_selector="kubernetes.io/service-name=web"
    )
    assert sorted(e.addresses[0] for s in slices.items for e in s.endpoints if e.conditions.ready) == ips
    answers = set()
    for ident in ("web:http", "web:80", "http:web:80", "web") * 3:
        code, text = proxy(fast_probes, f"/api/v1/namespaces/default/services/{ident}/proxy/v2/models?x=1")
        assert code == 200 and text.startswith("v1 web-") and text.endswith(" /v2/models?x=1")
        answers.add(text.split()[1])
    assert answers <= {p.metadata.name for p in pods}
    body = json.dumps({"inputs": [1, 2]}).encode()
    assert proxy(fast_probes, "/api/v1/namespaces/default/services/web:http/proxy/v2/infer", body) == (
        201,
        body.decode(),
    )
    assert proxy(fast_probes, "/api/v1/namespaces/default/services/nope/proxy/")[0] == 404
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 0}})
    wait_for(lambda: ready_ips(core, "web") == [], what="no endpoints")
    code, text = proxy(fast_probes, "/api/v1/namespaces/default/services/web:http/proxy/")
    assert code == 503 and json.loads(text)["message"] == 'no endpoints available for service "web"'


def test_rolling_update_keeps_every_replica_ready_and_undo_reuses_revision_one(
    fast_probes: Emulator,
    apps: kubernetes.client.AppsV1Api,
    core: kubernetes.client.CoreV1Api,
    watch_ready: list[int],
) -> None:
    apps.create_namespaced_deployment("default", web("web"))
    core.create_namespaced_service("default", service("web"))
    wait_for(lambda: rolled_out(apps, "web", "1"), timeout=20, what="revision 1")
    first = replica_sets(apps, "web")["1"]
    watch_ready.clear()
    polled = []
    patch = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "main", "env": [{"name": "VERSION", "value": "v2"}]}]}
            }
        }
    }
    apps.patch_namespaced_deployment("web", "default", patch)
    deadline = time.monotonic() + 20
    while not rolled_out(apps, "web", "2"):
        assert time.monotonic() < deadline, "revision 2 did not roll out"
        polled.append(len(ready_ips(core, "web")))
    assert watch_ready and min(watch_ready) >= 2 and min(polled) >= 2
    by_revision = replica_sets(apps, "web")
    assert set(by_revision) == {"1", "2"} and by_revision["1"].spec.replicas == 0
    assert by_revision["2"].spec.replicas == 2 and by_revision["2"].metadata.name != first.metadata.name
    events = core.list_namespaced_event("default", field_selector="involvedObject.kind=Deployment").items
    new_name = by_revision["2"].metadata.name
    assert f"Scaled up replica set {new_name} from 0 to 1" in {e.message for e in events}
    assert proxy(fast_probes, "/api/v1/namespaces/default/services/web/proxy/")[1].startswith("v2 ")

    # undo as kubectl does: revision 1's template, without pod-template-hash, copied back
    template = core.api_client.sanitize_for_serialization(first.spec.template)
    del template["metadata"]["labels"]["pod-template-hash"]
    apps.patch_namespaced_deployment(
        "web", "default", [{"op": "replace", "path": "/spec/template", "value": template}]
    )
    wait_for(lambda: rolled_out(apps, "web", "3"), timeout=20, what="the undo")
    by_revision = replica_sets(apps, "web")
    assert set(by_revision) == {"2", "3"} and by_revision["3"].metadata.name == first.metadata.name
    assert by_revision["3"].metadata.annotations["deployment.kubernetes.io/revision-history"] == "1"
    pods = core.list_namespaced_pod("default", label_selector="app=web").items
    assert {p.metadata.labels["pod-template-hash"] for p in pods} == {
        first.metadata.labels["pod-template-hash"]
    }
    assert proxy(fast_probes, "/api/v1/namespaces/default/services/web/proxy/")[1].startswith("v1 ")
    assert min(watch_ready) >= 2


def test_a_readiness_probe_that_never_passes_exceeds_the_progress_deadline(
    fast_probes: Emulator, apps: kubernetes.client.AppsV1Api, core: kubernetes.client.CoreV1Api
) -> None:
    apps.create_namespaced_deployment("default", web("web", progressDeadlineSeconds=1))
    core.create_namespaced_service("default", service("web"))
    wait_for(lambda: rolled_out(apps, "web", "1"), timeout=20, what="revision 1")
    sick = {"name": "main", "env": [{"name": "SICK", "value": "1"}]}
    apps.patch_namespaced_deployment(
        "web", "default", {"spec": {"template": {"spec": {"containers": [sick]}}}}
    )

    def stuck() -> Any:
        d = apps.read_namespaced_deployment("web", "default")
        cond = condition(d, "Progressing")
        return d if cond is not None and cond.reason == "ProgressDeadlineExceeded" else None

    d = wait_for(stuck, timeout=20, what="ProgressDeadlineExceeded")
    cond, second = condition(d, "Progressing"), replica_sets(apps, "web")["2"]
    assert cond.status == "False"
    assert cond.message == f'ReplicaSet "{second.metadata.name}" has timed out progressing.'
    assert condition(d, "Available").status == "True" and d.status.available_replicas == 2
    assert d.status.updated_replicas == 1 and d.status.unavailable_replicas == 1
    selector = f"pod-template-hash={second.metadata.labels['pod-template-hash']}"
    (new_pod,) = core.list_namespaced_pod("default", label_selector=selector).items
    assert new_pod.status.container_statuses[0].state.running
    assert not new_pod.status.container_statuses[0].ready
    assert next(c for c in new_pod.status.conditions if c.type == "Ready").status == "False"
    assert len(ready_ips(core, "web")) == 2
    reasons = {(e.reason, e.message.split(":")[0]) for e in core.list_namespaced_event("default").items}
    assert ("Unhealthy", "Readiness probe failed") in reasons
    assert proxy(fast_probes, "/api/v1/namespaces/default/services/web/proxy/")[1].startswith("v1 ")


def test_revision_history_limit_and_pause(apps: kubernetes.client.AppsV1Api) -> None:
    spec = web("hist", replicas=1, revisionHistoryLimit=1)
    del spec["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    apps.create_namespaced_deployment("default", spec)
    for version in ("v2", "v3", "v4"):
        wait_for(lambda: rolled_out(apps, "hist"), timeout=20, what="a rollout")
        change = {"name": "main", "env": [{"name": "VERSION", "value": version}]}
        apps.patch_namespaced_deployment(
            "hist", "default", {"spec": {"template": {"spec": {"containers": [change]}}}}
        )
    wait_for(lambda: rolled_out(apps, "hist", "4"), timeout=20, what="revision 4")
    wait_for(
        lambda: sorted(replica_sets(apps, "hist")) == ["3", "4"], what="the history pruned to one old set"
    )
    apps.patch_namespaced_deployment("hist", "default", {"spec": {"paused": True, "replicas": 2}})
    change = {"name": "main", "env": [{"name": "VERSION", "value": "v5"}]}
    apps.patch_namespaced_deployment(
        "hist", "default", {"spec": {"template": {"spec": {"containers": [change]}}}}
    )
    wait_for(lambda: replica_sets(apps, "hist")["4"].spec.replicas == 2, what="scaling while paused")
    # no ReplicaSet has the paused template: both are old, and the history limit keeps one
    wait_for(lambda: sorted(replica_sets(apps, "hist")) == ["4"], what="the paused history pruned")
    d = apps.read_namespaced_deployment("hist", "default")
    assert condition(d, "Progressing").reason == "DeploymentPaused"
    apps.patch_namespaced_deployment("hist", "default", {"spec": {"paused": False}})
    wait_for(lambda: rolled_out(apps, "hist", "5"), timeout=20, what="the rollout after resume")


def test_invalid_deployments_are_refused(apps: kubernetes.client.AppsV1Api) -> None:
    bad = web("bad")
    bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(ApiException) as caught:
        apps.create_namespaced_deployment("default", bad)
    assert caught.value.status == 422 and "`selector` does not match template `labels`" in caught.value.body
    zero = web("zero")
    zero["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": 0, "maxUnavailable": "0%"}
    with pytest.raises(ApiException) as caught:
        apps.create_namespaced_deployment("default", zero)
    assert caught.value.status == 422 and "may not be 0 when `maxSurge` is 0" in caught.value.body
