"""One serve replica (``python -m workbench.runtime.serve_replica``), as real processes.

Each replica is started once for the module, all of them at once, on revision folders written
here by hand (as the backend writes them) and on free loopback ports; the tests send real HTTP
requests to KServe's handlers.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
MAX_BODY = 4096

# A KServe custom predictor as its users write one, the main block included: the replica
# serves the class itself (the block would start a second server on port 8080 and never return).
CLASS_MODEL = """
import asyncio

import kserve
import numpy as np


class Scaler(kserve.Model):
    def load(self, model_uri):
        with open(model_uri) as fh:
            self.factor = float(fh.read())
        self.seen_uri = self.model_uri

    async def predict(self, payload, headers=None):
        if isinstance(payload, kserve.InferRequest):
            x = payload.inputs[0].as_numpy() * self.factor
            out = kserve.InferOutput("scaled", list(x.shape), "FP32", x.astype("float32"))
            return kserve.InferResponse(payload.id or "r", self.name, [out])
        await asyncio.sleep(payload.get("sleep", 0))
        return {"predictions": [v * self.factor for v in payload["instances"]], "uri": self.seen_uri}


if __name__ == "__main__":
    model = Scaler("custom-model")
    model.load("weights.txt")
    kserve.ModelServer().start([model])
"""

FUNCTION_MODEL = """
import numpy as np

offset = None


def load(model_uri):
    global offset
    offset = float(open(model_uri).read())


def predict(inputs):
    if isinstance(inputs, dict):
        a, b = inputs["a"], inputs["b"]
        return {"sum": a + b, "positive": a > 0, "label": np.where(a > 0, "up", "down")}
    return shift(inputs * scale + offset)
"""

BROKEN_LOAD = """
import kserve


class Broken(kserve.Model):
    def load(self):
        raise RuntimeError("weights missing at s3://bucket/model.pt")
"""


LIGHT_IMPORT_CHECK = """
import sys
from workbench.runtime.serve_model import import_kserve

import_kserve()
import kserve
from kserve import InferRequest, Model, constants

assert kserve.Model is Model and InferRequest.__module__ == "kserve.protocol.infer_type"
assert constants.V2_ROUTE_PREFIX == "/v2"
assert "kserve.api" not in sys.modules  # the Kubernetes half of kserve is left out...
assert kserve.KServeClient.__name__ == "KServeClient"  # ...until something asks for it
assert "kserve.api" in sys.modules and kserve.Model is Model
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Replica:
    """A revision folder written by hand and the replica process serving it."""

    def __init__(self, folder: Path, code: str, model_uri: str | None = None, inputs: Any = None) -> None:
        folder.mkdir(parents=True)
        (folder / "cell.py").write_text(code)
        meta = {"entry": "cell.py", "argv0": "cell", "args": ["--port", "9"], "model_name": "m",
                "model_uri": model_uri, "env": {}, "max_body": MAX_BODY}  # fmt: skip
        (folder / "meta.json").write_text(json.dumps(meta))
        if inputs is not None:
            (folder / "inputs.pkl").write_bytes(cloudpickle.dumps(inputs))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stderr = folder.parent / f"{folder.name}.stderr"
        argv = [sys.executable, "-m", "workbench.runtime.serve_replica", str(folder),
                "--host", "127.0.0.1", "--port", str(self.port)]  # fmt: skip
        with self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.stderr.read_text()
            try:
                if httpx.get(f"{self.url}/v2/models/m/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"not ready in 90 s: {self.stderr.read_text()}")

    def exit_code(self) -> int:
        return self.proc.wait(timeout=90)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def light_import() -> Iterator[subprocess.Popen[str]]:
    """The check of :data:`LIGHT_IMPORT_CHECK`, started with the replicas to run alongside them."""
    argv = [sys.executable, "-c", LIGHT_IMPORT_CHECK]
    with subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        yield proc


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, light_import: subprocess.Popen[str]
) -> Iterator[dict[str, Replica]]:
    root = tmp_path_factory.mktemp("revisions")
    weights = root / "weights.txt"
    weights.write_text("3")
    offset = root / "offset.txt"
    offset.write_text("0.5")
    sent = {"scale": 2.0, "shift": lambda x: x - 0.25}  # --send: a number and a function (cloudpickle)
    started = {
        "class": Replica(root / "class", CLASS_MODEL, model_uri=str(weights)),
        "graceful": Replica(root / "graceful", CLASS_MODEL, model_uri=str(weights)),
        "function": Replica(root / "function", FUNCTION_MODEL, model_uri=str(offset), inputs=sent),
        "broken": Replica(root / "broken", BROKEN_LOAD),
        "empty": Replica(root / "empty", "x = 1\n"),
    }
    yield started
    for replica in started.values():
        replica.stop()


@pytest.fixture(scope="module")
def scaler(replicas: dict[str, Replica]) -> Replica:
    replicas["class"].wait_ready()
    return replicas["class"]


@pytest.fixture(scope="module")
def function(replicas: dict[str, Replica]) -> Replica:
    replicas["function"].wait_ready()
    return replicas["function"]


def test_a_kserve_model_subclass_answers_v1_and_v2_with_its_load_given_the_uri(scaler: Replica) -> None:
    answer = httpx.post(f"{scaler.url}/v1/models/m:predict", json={"instances": [1, 2]})
    assert answer.status_code == 200
    assert answer.json()["predictions"] == [3.0, 6.0]  # the factor load() read from the URI's file
    assert answer.json()["uri"].endswith("weights.txt")  # self.model_uri was set before load()
    tensor = {"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}
    answer = httpx.post(f"{scaler.url}/v2/models/m/infer", json={"inputs": [tensor]})
    assert answer.status_code == 200
    (out,) = answer.json()["outputs"]
    assert (out["name"], out["datatype"], out["shape"]) == ("scaled", "FP32", [2, 3])
    assert out["data"] == [3, 6, 9, 12, 15, 18]


def test_health_and_metadata(scaler: Replica) -> None:
    assert httpx.get(f"{scaler.url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{scaler.url}/v2/health/ready").json() == {"ready": True}
    assert httpx.get(f"{scaler.url}/v2/models/m").json()["name"] == "m"


def test_a_plain_predict_function_with_load_and_sent_variables(function: Replica) -> None:
    # predict(x) = shift(x * scale + offset): scale and shift came by --send, offset from load(uri)
    answer = httpx.post(f"{function.url}/v1/models/m:predict", json={"instances": [[1.0, 2.0]]})
    assert answer.status_code == 200
    assert answer.json() == {"predictions": [[2.25, 4.25]]}


def test_v2_typed_tensors_round_trip(function: Replica) -> None:
    tensor = {"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [[0, 1, 2], [3, 4, 5]]}
    answer = httpx.post(f"{function.url}/v2/models/m/infer", json={"id": "q1", "inputs": [tensor]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["id"], body["model_name"]) == ("q1", "m")
    (out,) = body["outputs"]
    assert (out["name"], out["datatype"], out["shape"]) == ("output-0", "FP32", [2, 3])
    assert out["data"] == [0.25, 2.25, 4.25, 6.25, 8.25, 10.25]


def test_several_inputs_come_as_a_dict_and_outputs_keep_their_datatypes(function: Replica) -> None:
    inputs = [{"name": "a", "shape": [3], "datatype": "INT64", "data": [-1, 0, 5]},
              {"name": "b", "shape": [3], "datatype": "INT64", "data": [1, 1, 1]}]  # fmt: skip
    answer = httpx.post(f"{function.url}/v2/models/m/infer", json={"inputs": inputs})
    assert answer.status_code == 200, answer.text
    outputs = {out["name"]: (out["datatype"], out["shape"], out["data"]) for out in answer.json()["outputs"]}
    assert outputs == {
        "sum": ("INT64", [3], [0, 1, 6]),
        "positive": ("BOOL", [3], [False, False, True]),
        "label": ("BYTES", [3], ["down", "down", "up"]),
    }


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("v1/models/m:predict", b'{"instances": [1,', 400, "Unrecognized request format"),
        ("v2/models/m/infer", b'{"inputs": [{"na', 400, "JSON decode error"),
        ("v2/models/m/infer", b'{"inputs": [{"name": "x"}]}', 400, "Field required"),
        ("v1/models/m:predict", b'{"rows": [1]}', 400, '{"instances": [...]}'),
        ("v1/models/other:predict", b'{"instances": [1]}', 404, "other"),
        ("v2/models/m/infer",
         b'{"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3]}]}',
         400, "3 values do not fill shape [2, 3]"),
        ("v2/models/m/infer",
         b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FLOAT", "data": [1]}]}',
         400, "unknown datatype 'FLOAT'"),
        ("nowhere", b"{}", 404, "Not Found"),
    ],
)  # fmt: skip
def test_bad_requests_get_4xx_json_and_the_server_stays_up(
    function: Replica, path: str, body: bytes, status: int, words: str
) -> None:
    headers = {"content-type": "application/json"}
    answer = httpx.post(f"{function.url}/{path}", content=body, headers=headers)
    assert answer.status_code == status
    assert words in answer.json()["error"]
    after = httpx.post(f"{function.url}/v1/models/m:predict", json={"instances": [1.0]})
    assert after.json() == {"predictions": [2.25]}


def test_bodies_over_max_body_get_413_declared_or_chunked(function: Replica) -> None:
    big = json.dumps({"instances": [1.0] * MAX_BODY}).encode()
    answer = httpx.post(f"{function.url}/v1/models/m:predict", content=big)
    assert answer.status_code == 413
    assert "larger than 4096 bytes" in answer.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    answer = httpx.post(f"{function.url}/v1/models/m:predict", content=chunks())
    assert answer.status_code == 413
    small = json.dumps({"instances": [1.0, 2.0]}).encode()
    answer = httpx.post(f"{function.url}/v1/models/m:predict", content=iter([small[:5], small[5:]]))
    assert answer.json() == {"predictions": [2.25, 4.25]}


def test_sigterm_lets_the_request_in_flight_finish_then_exits_0(replicas: dict[str, Replica]) -> None:
    replica = replicas["graceful"]
    replica.wait_ready()
    answers: list[httpx.Response] = []
    slow = threading.Thread(
        target=lambda: answers.append(
            httpx.post(
                f"{replica.url}/v1/models/m:predict", json={"instances": [1], "sleep": 1.0}, timeout=30
            )
        )
    )
    slow.start()
    time.sleep(0.4)  # the request is in predict's sleep
    replica.proc.send_signal(signal.SIGTERM)
    slow.join(timeout=30)
    assert [a.json()["predictions"] for a in answers] == [[3.0]]
    assert replica.exit_code() == 0


def test_kserve_is_imported_without_its_kubernetes_half_until_asked(
    replicas: dict[str, Replica], light_import: subprocess.Popen[str]
) -> None:
    _, err = light_import.communicate(timeout=90)
    assert light_import.returncode == 0, err


def test_a_load_that_raises_exits_3_with_the_error_as_the_last_line(replicas: dict[str, Replica]) -> None:
    replica = replicas["broken"]
    assert replica.exit_code() == 3
    err = replica.stderr.read_text()
    assert err.strip().splitlines()[-1] == "RuntimeError: weights missing at s3://bucket/model.pt"
    assert 'File "' in err and "serve_model.py" not in err  # the user's frames only


def test_code_that_defines_no_model_exits_3_and_says_so(replicas: dict[str, Replica]) -> None:
    replica = replicas["empty"]
    assert replica.exit_code() == 3
    last = replica.stderr.read_text().strip().splitlines()[-1]
    assert (
        last == "workbench: cell defines no model: add a kserve.Model subclass or a predict(inputs) function"
    )
