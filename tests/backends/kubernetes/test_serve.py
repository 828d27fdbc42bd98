"""Endpoints on the Kubernetes backend, end to end against the API emulator with the real client.

The emulator's Deployment and ReplicaSet controllers roll the pods out, its process kubelet
runs every replica (``workbench.runtime.serve_replica``, KServe's ModelServer) on a loopback
address of its own and probes it over HTTP, and its service proxy forwards each request to a
ready endpoint. Each replica imports kserve (about a second and 125 MB): the tests keep the
number of pods small.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.k8s.emulator import Emulator
from tests.k8s.kserve import install_kserve
from workbench.backends.kubernetes import serve_manifests
from workbench.config import load_settings
from workbench.errors import BackendUnavailable, Conflict, NotFound, SpecError, WorkloadFailed
from workbench.service import Service

ID = "workbench.jupyter.org/id"


def model(offset: int) -> str:
    """A plain predict function whose answers say which revision gave them."""
    return f"def predict(x):\n    return x + {offset}\n"


BROKEN = (
    "def load(model_uri):\n    raise ValueError('weights are corrupt')\n\n\ndef predict(x):\n    return x\n"
)


@pytest.fixture
def kube(kube_env: Path, k8s: Emulator) -> Iterator[Service]:
    """A service on the emulator, whose probes run ten times faster."""
    k8s.probe_scale = 0.1
    svc = Service(load_settings())
    yield svc
    for workload in svc.store.list(status=["pending", "running"]):
        svc.cancel(workload.id)
    svc.close()


def names(k8s: Emulator, plural: str, group: str = "") -> list[str]:
    """The names of the objects of one kind in the default namespace, sorted."""
    objects = k8s.call(lambda: k8s.store.list((group, plural), "default"))
    return sorted(obj["metadata"]["name"] for obj in objects)


class Stream:
    """Requests one after another from a thread until stopped; what came back, and what failed."""

    def __init__(self, kube: Service, name: str) -> None:
        self.kube, self.name = kube, name
        self.seen: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.seen += answers(self.kube, self.name)
            except Exception as exc:  # every failure counts
                self.failures.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.01)

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join(timeout=30)
        return self.seen


def answers(kube: Service, name: str, count: int = 1) -> list[float]:
    """What ``count`` requests for x = 0 get back (the revision's offset)."""
    return [float(kube.predict(name, np.zeros((1, 1)))[0][0]) for _ in range(count)]


def test_serve_predict_rollout_undo_and_a_revision_that_cannot_load(kube: Service, k8s: Emulator) -> None:
    endpoint = kube.launch({"kind": "serve", "code": model(1), "name": "iris"})
    state = kube.rollout_status("iris", timeout=120)
    assert (state["phase"], state["revision"], state["ready"], state["desired"]) == ("complete", 1, 1, 1)
    record = kube.get("iris")
    assert record.status == "running" and record.info["url"] == "http://iris.default.svc.cluster.local"
    assert record.info["proxy_url"].endswith("/api/v1/namespaces/default/services/iris:http/proxy")
    assert record.info["traffic"] == {"1": 100} and record.info["rps"] is None
    # Open Inference Protocol v2 and KServe V1, through the API server's service proxy
    assert kube.predict("iris", np.array([[1.0, 2.0]], dtype="float32")).tolist() == [[2.0, 3.0]]
    assert kube.predict("iris", [[1.0, 2.0]], protocol="v1").tolist() == [[2.0, 3.0]]
    ready = kube.endpoint_request("iris", "GET", "/v2/models/iris/ready")
    assert ready == (200, {"name": "iris", "ready": True})
    status, error = kube.endpoint_request("iris", "POST", "/v2/models/iris/infer", {"inputs": "nonsense"})
    assert 400 <= status < 500 and "error" in error  # the server stays up
    # a new revision: a new ConfigMap, the Deployment's template replaced, rolled out, while
    # requests keep coming: none of them fails (maxUnavailable 0, readiness, the preStop pause)
    stream = Stream(kube, "iris")
    state = kube.rollout("iris", {"code": model(2)}, timeout=120)
    assert (state["phase"], state["revision"]) == ("complete", 2)
    assert answers(kube, "iris", 3) == [2.0, 2.0, 2.0]
    assert names(k8s, "configmaps") == ["iris-r1", "iris-r2"]
    # kubectl rollout undo: revision 1's template back, as revision 3
    state = kube.undo("iris", timeout=120)
    assert (state["phase"], state["revision"]) == ("complete", 3)
    assert answers(kube, "iris", 3) == [1.0, 1.0, 1.0]
    exported = {doc["kind"]: doc for doc in kube.export("iris")}  # what serves now, for kubectl or GitOps
    assert exported["ConfigMap"]["data"]["cell.py"] == model(1) and "Deployment" in exported
    seen = stream.stop()
    assert stream.failures == [] and {1.0, 2.0} <= set(seen), (stream.failures, len(seen))
    history = kube.rollout_history("iris")
    assert [(h["revision"], h["cause"]) for h in history] == [(2, "rollout cell"), (3, "undo to revision 1")]
    with pytest.raises(NotFound, match="unable to find revision 9"):
        kube.undo("iris", to_revision=9)
    client = kube.backend("kubernetes").client  # type: ignore[attr-defined]
    client.patch("Deployment", "iris", {"spec": {"paused": True}})
    with pytest.raises(Conflict, match="paused"):  # as kubectl: resume it first
        kube.undo("iris")
    client.patch("Deployment", "iris", {"spec": {"paused": False}})
    logs = "".join(kube.logs("iris"))
    assert "[r3.0] " in logs and all(line.startswith("[r") for line in logs.splitlines())
    # a model that cannot load never gets traffic: the rollout fails with its error, revision 3 serves on
    with pytest.raises(WorkloadFailed) as failed:
        kube.rollout("iris", {"code": BROKEN}, timeout=120)
    assert "ValueError: weights are corrupt" in str(failed.value) and "\n" not in str(failed.value)
    state = _state(kube, "iris")
    assert (
        state["phase"] == "failed"
        and "revision 4 failed: ValueError: weights are corrupt" in state["message"]
    )
    assert answers(kube, "iris", 3) == [1.0, 1.0, 1.0]
    assert kube.get("iris").status == "running"
    # a canary the replica counts cannot carry is refused before anything is made
    before = names(k8s, "configmaps")
    with pytest.raises(SpecError, match="--replicas 3"):
        kube.rollout("iris", {"code": model(5), "canary": 20})
    with pytest.raises(SpecError):
        kube.rollout("iris", {"code": model(5), "canary": 101})  # the spec's range
    assert names(k8s, "configmaps") == before and names(k8s, "deployments", "apps") == ["iris"]
    # an endpoint made elsewhere is found by its labels
    kube.store.delete("iris")
    kube.list()
    assert kube.store.find("iris").kind == "serve"
    # following the logs streams every replica's lines until the endpoint ends
    followed: list[str] = []
    reader = threading.Thread(target=lambda: followed.extend(kube.logs("iris", follow=True)), daemon=True)
    reader.start()
    deadline = time.monotonic() + 30
    while not any("Uvicorn running" in chunk for chunk in followed):
        assert time.monotonic() < deadline, followed
        time.sleep(0.05)
    # cancel removes every object
    kube.cancel(endpoint.id)
    reader.join(timeout=30)
    assert not reader.is_alive() and all(line.startswith("[r") for line in "".join(followed).splitlines())
    assert kube.get("iris").status == "cancelled"
    for plural, group in (
        ("deployments", "apps"),
        ("services", ""),
        ("configmaps", ""),
        ("networkpolicies", "networking.k8s.io"),
    ):
        assert names(k8s, plural, group) == [], plural


def _state(kube: Service, name: str) -> dict[str, Any]:
    backend = kube.backend("kubernetes")
    return backend.rollout_state(kube.store.find(name))  # type: ignore[attr-defined, no-any-return]


def test_a_canary_gets_its_share_then_is_promoted_or_dropped(kube: Service, k8s: Emulator) -> None:
    kube.launch({"kind": "serve", "code": model(1), "name": "web", "replicas": 4})
    kube.rollout_status("web", timeout=120)
    assert names(k8s, "poddisruptionbudgets", "policy") == ["web"]  # more than one replica
    state = kube.rollout("web", {"code": model(2), "canary": 20}, timeout=120)
    assert (state["phase"], state["revision"], state["canary"]) == ("complete", 1, 2)
    assert (state["ready"], state["desired"], state["traffic"]) == (5, 5, {"1": 80, "2": 20})
    assert names(k8s, "deployments", "apps") == ["web", "web-canary"]
    seen = answers(kube, "web", 500)
    assert set(seen) == {1.0, 2.0} and 50 <= seen.count(2.0) <= 150, seen.count(2.0)  # 10 to 30 %
    with pytest.raises(Conflict, match="canary"):  # one canary at a time
        kube.rollout("web", {"code": model(3), "canary": 20})
    history = kube.rollout_history("web")
    assert [(h["revision"], h["canary"]) for h in history] == [(1, False), (2, True)]
    # undo drops the canary: the stable revision takes every request again
    state = kube.undo("web", timeout=120)
    assert (state["revision"], state["canary"]) == (1, None)
    assert names(k8s, "deployments", "apps") == ["web"]
    assert set(answers(kube, "web", 20)) == {1.0}
    # scale down to one replica, roll a canary out at 50 % and promote it
    kube.scale_endpoint("web", replicas=1)
    kube.rollout_status("web", timeout=120)
    assert names(k8s, "poddisruptionbudgets", "policy") == []
    kube.rollout("web", {"code": model(3), "canary": 50}, timeout=120)
    state = kube.promote("web", timeout=120)
    assert (state["phase"], state["revision"], state["canary"]) == ("complete", 2, None)
    assert set(answers(kube, "web", 20)) == {3.0}
    assert names(k8s, "deployments", "apps") == ["web"]
    kube.scale_endpoint("web", autoscale="1:3")
    hpa = k8s.get("horizontalpodautoscalers", "web", group="autoscaling")
    assert hpa is not None and (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 3)


def test_a_first_revision_that_cannot_load_fails_the_endpoint(kube: Service, k8s: Emulator) -> None:
    kube.launch({"kind": "serve", "code": BROKEN, "name": "bad"})
    with pytest.raises(WorkloadFailed, match="revision 1 failed: ValueError: weights are corrupt"):
        kube.rollout_status("bad", timeout=120)
    record = kube.get("bad")
    assert record.status == "failed" and record.message.endswith("ValueError: weights are corrupt")
    assert names(k8s, "deployments", "apps") == [] and names(k8s, "configmaps") == []  # nothing crash-loops


def test_kserve_is_refused_in_one_line_without_its_crd(kube: Service, k8s: Emulator) -> None:
    with pytest.raises(BackendUnavailable) as caught:
        kube.launch({"kind": "serve", "code": model(1), "name": "ks", "operator": "kserve"})
    assert "KServe is not installed" in str(caught.value) and "\n" not in str(caught.value)
    assert "--operator kserve" in (caught.value.hint or "")
    assert kube.store.list() == []
    assert not [m for m, _, _ in k8s.requests if m in ("POST", "PUT", "PATCH", "DELETE")]


def test_an_inference_service_serves_and_rolls_out(
    kube: Service, k8s: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_kserve(k8s)  # the CRD and a stand-in of KServe's RawDeployment mode
    # every pod of the emulator shares this machine's network: each binds its own address
    pod_ip = {"name": "WORKBENCH_BIND_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    monkeypatch.setattr(serve_manifests, "KSERVE_BIND", pod_ip)
    kube.launch({"kind": "serve", "code": model(1), "name": "ks", "operator": "kserve"})
    state = kube.rollout_status("ks", timeout=120)
    assert (state["phase"], state["revision"]) == ("complete", 1)
    assert kube.get("ks").info["url"] == "http://ks-predictor.default.svc.cluster.local"
    assert answers(kube, "ks") == [1.0]
    assert kube.predict("ks", [[1.0]], protocol="v1").tolist() == [[2.0]]
    state = kube.rollout("ks", {"code": model(2)}, timeout=120)
    assert (state["phase"], state["revision"]) == ("complete", 2)
    assert answers(kube, "ks", 3) == [2.0, 2.0, 2.0]
    state = kube.undo("ks", timeout=120)
    assert (state["phase"], state["revision"]) == ("complete", 3)
    assert answers(kube, "ks", 3) == [1.0, 1.0, 1.0]
    isvc = k8s.get("inferenceservices", "ks", group="serving.kserve.io")
    assert isvc is not None and isvc["spec"]["predictor"]["volumes"][1]["configMap"]["name"] == "ks-r1"
    assert [h["cause"] for h in kube.rollout_history("ks")] == [
        "serve cell",
        "rollout cell",
        "undo to revision 1",
    ]
    kube.cancel("ks")
    assert names(k8s, "inferenceservices", "serving.kserve.io") == [] and names(k8s, "configmaps") == []
