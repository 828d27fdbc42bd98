"""The local endpoint's router and controller, with real processes.

The router runs as the supervisor would run it (``python -m workbench.runtime.serve_router
RUN_DIR``), against a run directory built by hand and a record in a real store. Replicas are the
stand-in of :mod:`tests.runtime.fake_replica` (selected through WORKBENCH_SERVE_REPLICA_MODULE),
and, in the last test, the real KServe replica when it is there.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from workbench.store import Store, Workload

REPO = Path(__file__).resolve().parents[2]
WORKLOAD = "serve-test"


class Endpoint:
    """A run directory, its store record and (once started) its router process."""

    def __init__(self, run_dir: Path, store: Store) -> None:
        self.run_dir = run_dir
        self.store = store
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = run_dir.parent / "router.log"
        self.generation = 0

    def revision(self, number: int, env: dict[str, str] | None = None, max_body: int = 2**20) -> None:
        folder = self.run_dir / "revisions" / str(number)
        folder.mkdir(parents=True)
        meta: dict[str, Any] = {"entry": "cell.py", "argv0": "cell.py", "args": [], "model_name": "m",
                                "model_uri": None, "env": env or {}, "max_body": max_body}  # fmt: skip
        (folder / "meta.json").write_text(json.dumps(meta))
        (folder / "cell.py").write_text("def predict(x):\n    return x\n")

    def desire(self, traffic: dict[int, int], hup: bool = True, **fields: Any) -> int:
        """Write desired.json atomically (as the service does), then SIGHUP the router."""
        self.generation += 1
        desired = {
            "generation": self.generation, "model_name": "m", "max_body": 2**20, "port": None,
            "replicas": 1, "autoscale": None, "target_concurrency": 4.0,
            "revisions": [{"revision": n, "payload": f"revisions/{n}", "traffic": w}
                          for n, w in traffic.items()],
            "history": [{"revision": n, "created": time.time(), "cause": "test"} for n in traffic],
        }  # fmt: skip
        desired.update(fields)
        tmp = self.run_dir / "desired.json.tmp"
        tmp.write_text(json.dumps(desired))
        os.replace(tmp, self.run_dir / "desired.json")
        if hup and self.proc is not None:
            self.proc.send_signal(signal.SIGHUP)
        return self.generation

    def start(self, module: str = "tests.runtime.fake_replica") -> None:
        env = dict(os.environ, WORKBENCH_SERVE_REPLICA_MODULE=module, PYTHONPATH=str(REPO))
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "workbench.runtime.serve_router", str(self.run_dir)],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
            )  # fmt: skip

    def info(self) -> dict[str, Any]:
        return self.store.get(WORKLOAD).info

    def wait(self, check: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            info = self.info()
            if check(info):
                return info
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"router exited {self.proc.returncode}\n{self.log.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; info={json.dumps(info)}\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)

    def settled(self, generation: int, phase: str = "complete", timeout: float = 30.0) -> dict[str, Any]:
        return self.wait(
            lambda i: i.get("generation") == generation and i.get("rollout", {}).get("phase") == phase,
            timeout,
        )

    @property
    def address(self) -> tuple[str, int]:
        url = self.wait(lambda i: "url" in i)["url"]
        host, port = url.removeprefix("http://").split(":")
        return host, int(port)

    def connect(self) -> http.client.HTTPConnection:
        host, port = self.address
        return http.client.HTTPConnection(host, port, timeout=30)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the router did not stop within 15 s of SIGTERM") from None


def call(
    conn: http.client.HTTPConnection,
    method: str = "POST",
    path: str = "/v2/models/m/infer",
    body: bytes = b"{}",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn.request(method, path, body=body if method != "GET" else None, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


def revision_of(conn: http.client.HTTPConnection) -> str:
    status, headers, body = call(conn)
    assert status == 200, body
    assert headers["x-workbench-revision"] == json.loads(body)["revision"]
    return headers["x-workbench-revision"]


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


class Load:
    """Clients sending requests without pause (each on its own keep-alive connection)."""

    def __init__(self, endpoint: Endpoint, clients: int = 4, path: str = "/v2/models/m/infer") -> None:
        self.endpoint, self.path = endpoint, path
        self.answers: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def _client(self) -> None:
        conn = self.endpoint.connect()
        while not self._stop.is_set():
            try:
                status, headers, body = call(conn, "POST", self.path, b'{"inputs": []}')
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(repr(exc))
                conn.close()
                conn = self.endpoint.connect()
                continue
            if status != 200:
                self.failures.append(f"{status} {body[:200]!r}")
            else:
                self.answers[headers["x-workbench-revision"]] += 1
        conn.close()

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    @property
    def total(self) -> int:
        return sum(self.answers.values()) + len(self.failures)


@pytest.fixture
def endpoint(tmp_path: Path, wb_home: Path) -> Iterator[Endpoint]:
    run_dir = tmp_path / "runs" / WORKLOAD
    run_dir.mkdir(parents=True)
    store = Store(wb_home / "workbench.db")
    store.insert(
        Workload(id=WORKLOAD, kind="serve", backend="local", status="running", spec={"kind": "serve"},
                 run_dir=str(run_dir), created=time.time(), info={"kept": "by the service"})
    )  # fmt: skip
    ep = Endpoint(run_dir, store)
    yield ep
    ep.stop()
    store.close()


def started(endpoint: Endpoint, **fields: Any) -> Endpoint:
    endpoint.revision(1)
    generation = endpoint.desire({1: 100}, **fields)
    endpoint.start()
    endpoint.settled(generation)
    return endpoint


def test_ready_endpoint_answers_and_records_its_status(endpoint: Endpoint) -> None:
    started(endpoint)
    conn = endpoint.connect()
    status, headers, body = call(conn, "PUT", "/some/path%20x?a=1&b=two", b"payload")
    answer = json.loads(body)
    assert (status, headers["x-workbench-revision"]) == (200, "1")
    assert answer["method"] == "PUT" and answer["path"] == "/some/path x" and answer["query"] == "a=1&b=two"
    assert answer["body"] == "payload"
    status, _, body = call(conn, "GET", "/v2/models/m/ready")
    assert status == 200
    status, _, body = call(conn, "GET", "/v2/models/other/ready")  # the replica's own 404 passes through
    assert status == 404 and json.loads(body) == {"error": "unknown model"}
    info = endpoint.wait(lambda i: i["rps"] > 0)
    assert info["kept"] == "by the service"  # merged, not replaced
    assert info["url"] == f"http://127.0.0.1:{endpoint.address[1]}"
    assert {k: info[k] for k in ("model_name", "revision", "canary", "traffic", "ready", "desired")} == {
        "model_name": "m", "revision": 1, "canary": None, "traffic": {"1": 100}, "ready": 1, "desired": 1,
    }  # fmt: skip
    assert info["rollout"]["phase"] == "complete" and info["generation"] == 1
    assert info["revisions"] == [
        {"revision": 1, "ready": 1, "desired": 1, "traffic": 100, "state": "serving", "message": ""}
    ]
    log = endpoint.log.read_text()
    assert "[r1.0] fake replica of revision 1 starting" in log


def test_no_ready_replica_is_a_json_503(endpoint: Endpoint) -> None:
    endpoint.revision(1, env={"FAKE_STARTUP_DELAY": "2"})
    endpoint.desire({1: 100})
    endpoint.start()
    status, headers, body = call(endpoint.connect())
    assert status == 503 and headers["content-type"] == "application/json"
    assert "no ready replica" in json.loads(body)["error"]
    assert endpoint.info()["rollout"]["phase"] == "progressing"
    endpoint.settled(1)
    assert revision_of(endpoint.connect()) == "1"


def test_rollout_then_undo(endpoint: Endpoint) -> None:
    started(endpoint)
    conn = endpoint.connect()
    first_pid = json.loads(call(conn)[2])["pid"]
    endpoint.revision(2, env={"FAKE_STARTUP_DELAY": "1"})
    generation = endpoint.desire({2: 100})
    info = endpoint.wait(lambda i: i["generation"] == generation)
    assert info["rollout"]["phase"] == "progressing"
    assert revision_of(conn) == "1"  # the old revision serves while the new one starts
    info = endpoint.settled(generation)
    assert (info["revision"], info["traffic"], info["ready"]) == (2, {"2": 100}, 1)
    assert {revision_of(conn) for _ in range(20)} == {"2"}
    assert not pid_alive(first_pid)  # drained, then stopped
    generation = endpoint.desire({1: 100})  # undo: back to the kept revision 1
    info = endpoint.settled(generation)
    assert info["revision"] == 1 and [r["revision"] for r in info["revisions"]] == [1]
    assert {revision_of(conn) for _ in range(20)} == {"1"}


def test_canary_gets_its_share_then_promotion(endpoint: Endpoint) -> None:
    started(endpoint)
    endpoint.revision(2)
    info = endpoint.settled(endpoint.desire({1: 80, 2: 20}))
    assert (info["revision"], info["canary"], info["traffic"]) == (1, 2, {"1": 80, "2": 20})
    conn = endpoint.connect()
    seen = Counter(revision_of(conn) for _ in range(500))
    assert 50 <= seen["2"] <= 150, seen
    info = endpoint.settled(endpoint.desire({2: 100}, hup=False))  # promote; seen without SIGHUP too
    assert (info["revision"], info["canary"]) == (2, None)
    assert {revision_of(conn) for _ in range(20)} == {"2"}


def test_no_request_fails_through_rollout_and_undo(endpoint: Endpoint) -> None:
    started(endpoint)
    endpoint.revision(2, env={"FAKE_STARTUP_DELAY": "0.5"})
    with Load(endpoint, clients=4) as load:
        time.sleep(0.5)
        endpoint.settled(endpoint.desire({2: 100}))
        time.sleep(0.5)
        endpoint.settled(endpoint.desire({1: 100}))
        time.sleep(0.5)
    assert load.failures == []
    assert load.answers["1"] > 0 and load.answers["2"] > 0
    assert load.total > 200


def test_failing_revision_never_gets_traffic(endpoint: Endpoint) -> None:
    started(endpoint, progress_deadline=3)
    endpoint.revision(2, env={"FAKE_FAIL": "ValueError: cannot load weights from /nowhere"})
    endpoint.revision(3, env={"FAKE_STARTUP_DELAY": "30"})
    with Load(endpoint, clients=2) as load:
        info = endpoint.settled(endpoint.desire({2: 100}, progress_deadline=3), phase="failed")
        assert (
            info["rollout"]["message"] == "revision 2 failed: ValueError: cannot load weights from /nowhere"
        )
        assert (info["revision"], info["traffic"]) == (1, {"1": 100})
        row = next(r for r in info["revisions"] if r["revision"] == 2)
        assert row["state"] == "failed" and row["traffic"] == 0
        info = endpoint.settled(endpoint.desire({3: 100}, progress_deadline=1), phase="failed")
        assert "not ready within 1s" in info["rollout"]["message"]
    assert load.failures == [] and set(load.answers) == {"1"}
    info = endpoint.settled(endpoint.desire({1: 100}))  # undo
    assert [r["revision"] for r in info["revisions"]] == [1]


def test_body_limit(endpoint: Endpoint) -> None:
    started(endpoint, max_body=1000)
    conn = endpoint.connect()
    body = bytes(range(256)) * 3 + b"\x00" * 232  # 1000 bytes, not text
    status, headers, echoed = call(conn, "POST", "/echo", body, {"content-type": "application/x-bytes"})
    assert (status, echoed, headers["content-type"]) == (200, body, "application/x-bytes")
    status, headers, answer = call(conn, "POST", "/echo", body + b"!")
    assert status == 413 and "larger than the limit of 1000 bytes" in json.loads(answer)["error"]
    conn = endpoint.connect()  # a chunked body (no content-length) is counted as it arrives
    conn.request("POST", "/echo", body=iter([body, body]), encode_chunked=True)
    resp = conn.getresponse()
    assert resp.status == 413 and "error" in json.loads(resp.read())


def test_dead_replica_is_replaced(endpoint: Endpoint) -> None:
    started(endpoint)
    conn = endpoint.connect()
    pid = json.loads(call(conn)[2])["pid"]
    status, _, _ = call(conn, "POST", "/crash")
    assert status in (502, 503)
    endpoint.wait(lambda i: i["ready"] == 0 or "replaced" in i["revisions"][0]["message"])
    endpoint.wait(lambda i: i["ready"] == 1)
    conn = endpoint.connect()
    assert json.loads(call(conn)[2])["pid"] != pid
    assert "replica r1.0 lost" in endpoint.log.read_text()


def test_scaling_and_autoscaling(endpoint: Endpoint) -> None:
    started(endpoint)
    info = endpoint.settled(endpoint.desire({1: 100}, replicas=2))
    assert (info["ready"], info["desired"]) == (2, 2)
    conn = endpoint.connect()
    assert len({json.loads(call(conn)[2])["pid"] for _ in range(10)}) == 2
    generation = endpoint.desire({1: 100}, replicas=1, autoscale=[1, 3], target_concurrency=1.0)
    endpoint.settled(generation)
    with Load(endpoint, clients=4, path="/slow?ms=100"):
        info = endpoint.wait(lambda i: i["desired"] == 3 and i["ready"] == 3, timeout=30)
    assert "autoscale revision 1:" in endpoint.log.read_text()


def test_sigterm_drains_then_exits_zero(endpoint: Endpoint) -> None:
    started(endpoint)
    conn = endpoint.connect()
    pid = json.loads(call(conn)[2])["pid"]
    answers: list[int] = []
    slow = threading.Thread(target=lambda: answers.append(call(conn, "GET", "/slow?ms=1000")[0]))
    slow.start()
    time.sleep(0.3)
    assert endpoint.stop() == 0
    slow.join()
    assert answers == [200]
    assert not pid_alive(pid)
    assert endpoint.info()["ready"] == 0


def test_unreadable_desired_state_or_taken_port_exit_at_once(endpoint: Endpoint) -> None:
    endpoint.start()
    assert endpoint.proc is not None and endpoint.proc.wait(30) == 2
    assert "cannot read" in endpoint.log.read_text()
    endpoint.revision(1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        endpoint.desire({1: 100}, port=taken.getsockname()[1])
        endpoint.start()
        assert endpoint.proc.wait(30) == 1
    assert "cannot listen on 127.0.0.1:" in endpoint.log.read_text()
    assert "[r1.0]" not in endpoint.log.read_text()  # no replica was started


@pytest.mark.skipif(
    not (REPO / "workbench" / "runtime" / "serve_replica.py").exists(),
    reason="the KServe replica is not there yet",
)
def test_with_the_kserve_replica(endpoint: Endpoint) -> None:
    endpoint.revision(1)
    endpoint.desire({1: 100})
    endpoint.start("workbench.runtime.serve_replica")
    endpoint.settled(1, timeout=60)
    conn = endpoint.connect()
    status, headers, body = call(conn, "POST", "/v1/models/m:predict", b'{"instances": [[1, 2], [3, 4]]}')
    assert (status, headers["x-workbench-revision"]) == (200, "1"), body
    assert json.loads(body) == {"predictions": [[1, 2], [3, 4]]}
    status, _, body = call(conn, "POST", "/v2/models/m/infer", b"not json")
    assert 400 <= status < 500 and "error" in json.loads(body)
