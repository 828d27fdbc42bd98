"""Endpoints on the local backend, through the service: real routers, real KServe model
servers on loopback, real HTTP requests."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import numpy as np
import pytest

from workbench.errors import Conflict, NotFound, SpecError, WorkloadFailed
from workbench.service import Service

from ...conftest import assert_nothing_created


def model(factor: float) -> str:
    """A plain predict function whose answers say which revision gave them."""
    body = f"    return np.asarray(inputs, dtype='float32') * {factor}\n"
    return "import numpy as np\n\ndef predict(inputs):\n" + body


CLASS_MODEL = """
import kserve


class Doubler(kserve.Model):
    def load(self):
        self.factor = 2.0
        self.ready = True

    def predict(self, payload, headers=None):
        return {"predictions": [[x * self.factor for x in row] for row in payload["instances"]]}
"""

BROKEN = (
    "def load(model_uri):\n    raise RuntimeError('weights are corrupt')\n\n"
    "def predict(inputs):\n    return inputs\n"
)
X = np.array([[1.0, 2.0, 3.0]], dtype="float32")


def factor_of(service: Service, name: str) -> float:
    return float(service.predict(name, X)[0][0])


def serve(service: Service, code: str, **fields: object) -> str:
    workload = service.launch({"kind": "serve", "code": code, **fields})
    state = service.rollout_status(workload.id, timeout=120)
    assert state["phase"] == "complete", state
    return workload.id


def test_serve_predict_rollout_undo_canary_promote(service: Service) -> None:
    name = serve(service, model(1), name="scorer")
    workload = service.get(name)
    assert workload.status == "running"
    assert workload.info["url"].startswith("http://127.0.0.1:")
    assert (workload.info["revision"], workload.info["ready"], workload.info["desired"]) == (1, 1, 1)

    # Open Inference Protocol v2: typed tensors both ways
    answer = service.predict(name, X)
    assert answer.dtype == np.float32 and answer.shape == (1, 3)
    np.testing.assert_allclose(answer, X)
    # KServe V1
    np.testing.assert_allclose(service.predict(name, X.tolist(), protocol="v1"), X)
    status, _ = service.endpoint_request(name, "GET", "/v2/health/ready")
    assert status == 200
    status, meta = service.endpoint_request(name, "GET", f"/v2/models/{name}")
    assert status == 200 and meta["name"] == name

    # rollout: revision 2 answers
    state = service.rollout(name, {"code": model(2)})
    assert (state["phase"], state["revision"]) == ("complete", 2)
    assert factor_of(service, name) == 2.0
    # undo: revision 1's model again, as revision 3
    state = service.undo(name)
    assert (state["phase"], state["revision"]) == ("complete", 3)
    assert factor_of(service, name) == 1.0
    history = service.rollout_history(name)
    assert [h["revision"] for h in history] == [1, 2, 3]
    assert history[2]["cause"] == "undo to 1"

    # canary: about a fifth of the requests reach the new revision
    state = service.rollout(name, {"code": model(5), "canary": 20})
    assert state["canary"] == 4 and state["traffic"] == {"3": 80, "4": 20}
    answers = [factor_of(service, name) for _ in range(500)]
    share = answers.count(5.0) / len(answers)
    assert 0.10 <= share <= 0.30, share
    assert set(answers) == {1.0, 5.0}
    state = service.promote(name)
    assert (state["revision"], state["canary"]) == (4, None)
    assert {factor_of(service, name) for _ in range(20)} == {5.0}

    # a revision whose load() raises never takes traffic; the model's error in one line
    with pytest.raises(WorkloadFailed) as failed:
        service.rollout(name, {"code": BROKEN})
    assert "weights are corrupt" in str(failed.value)
    assert "\n" not in failed.value.one_line()
    assert {factor_of(service, name) for _ in range(20)} == {5.0}
    assert service.get(name).status == "running"


def test_kserve_model_subclass_and_v1(service: Service) -> None:
    name = serve(service, CLASS_MODEL, name="doubler")
    np.testing.assert_allclose(service.predict(name, [[1, 2]], protocol="v1"), [[2, 4]])
    status, body = service.endpoint_request(name, "POST", "/v2/models/nope/infer", {"inputs": []})
    assert 400 <= status < 500 and "error" in body
    # the model's own predict() raising is the model's error: KServe answers 500 with JSON
    status, body = service.endpoint_request(name, "POST", "/v1/models/doubler:predict", "not an object")
    assert status == 500 and "error" in body
    # a body that is not JSON at all is the client's
    url = service.get(name).info["url"]
    answer = httpx.post(f"{url}/v1/models/doubler:predict", content=b"{not json", timeout=30)
    assert 400 <= answer.status_code < 500 and "error" in answer.json()
    answer = httpx.post(f"{url}/v2/models/doubler/infer", content=b"x" * (17 * 1024 * 1024), timeout=30)
    assert answer.status_code == 413 and "error" in answer.json()
    np.testing.assert_allclose(service.predict(name, [[3, 4]], protocol="v1"), [[6, 8]])  # still up


def test_model_uri_is_handed_to_load(service: Service, tmp_path: Path) -> None:
    weights = tmp_path / "weights.txt"
    weights.write_text("7")
    code = (
        "def load(model_uri):\n    global factor\n    factor = float(open(model_uri).read())\n\n"
        "def predict(inputs):\n    return [[x * factor for x in row] for row in inputs]\n"
    )
    name = serve(service, code, model_uri=str(weights))
    assert factor_of(service, name) == 7.0
    weights2 = tmp_path / "weights2.txt"
    weights2.write_text("9")
    service.rollout(name, {"model_uri": str(weights2)})
    assert factor_of(service, name) == 9.0


def test_no_request_fails_during_rollout_and_undo(service: Service) -> None:
    name = serve(service, model(1), replicas=2)
    failures: list[str] = []
    answered = [0]
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                value = factor_of(service, name)
            except Exception as exc:  # a failed request is what this test counts
                failures.append(repr(exc))
            else:
                assert value in (1.0, 3.0)
                answered[0] += 1

    threads = [threading.Thread(target=client) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        service.rollout(name, {"code": model(3)})
        service.undo(name)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert answered[0] > 50


def test_an_endpoint_whose_first_revision_fails_fails(service: Service) -> None:
    workload = service.launch({"kind": "serve", "code": BROKEN, "name": "broken"})
    with pytest.raises(WorkloadFailed) as failed:
        service.rollout_status(workload.id, timeout=120)
    assert "broken failed: revision 1 failed: RuntimeError: weights are corrupt" in failed.value.one_line()
    final = service.wait(workload.id, timeout=30)
    assert final.status == "failed" and "weights are corrupt" in final.message


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"replicas": 0}, ["--replicas", "0"]),
        ({"autoscale": "5:2"}, ["--autoscale", "MIN above MAX"]),
        ({"code": "x = 1\n"}, ["defines no model", "predict(inputs)"]),
        ({"code": "def predict(:\n"}, ["line 1"]),
    ],
)
def test_bad_serve_specs_create_nothing(
    service: Service, fields: dict[str, object], words: list[str]
) -> None:
    with pytest.raises(SpecError) as info:
        service.launch({"kind": "serve", "code": model(1), **fields})
    for word in words:
        assert word in info.value.one_line()
    assert_nothing_created(service)


def test_bad_rollouts_are_refused(service: Service) -> None:
    with pytest.raises(NotFound):
        service.rollout("no-such-endpoint", {"code": model(2)})
    pod = service.launch({"kind": "pod", "code": "print(1)"})
    service.wait(pod.id, timeout=60)
    with pytest.raises(SpecError) as info:
        service.rollout(pod.id, {"code": model(2)})
    assert "rollouts and predictions apply to endpoints" in info.value.one_line()
    name = serve(service, model(1))
    for change, words in (
        ({"code": model(2), "canary": 150}, ["--canary", "150"]),
        ({"code": model(2), "canary": -1}, ["--canary", "-1"]),
        ({}, ["a rollout needs a change"]),
        ({"code": "y = 2\n"}, ["defines no model"]),
    ):
        with pytest.raises(SpecError) as info:
            service.rollout(name, change)
        for word in words:
            assert word in info.value.one_line(), info.value.one_line()
    assert [h["revision"] for h in service.rollout_history(name)] == [1]
    with pytest.raises(Conflict):
        service.promote(name)
    with pytest.raises(SpecError):
        service.scale_endpoint(name, replicas=0)
    with pytest.raises(SpecError):
        service.scale_endpoint(name, autoscale="3:1")
