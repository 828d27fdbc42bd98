"""S1-S4: a local `serve` endpoint (router + one replica) against the same model served bare.

The model is a plain ``predict(x)`` (``x * 2``) served by the real replica
(``python -m workbench.runtime.serve_replica``: KServe's ModelServer app under uvicorn). The
baseline ("bare app") is that same replica process called directly on its port; "ours" is the
endpoint's router (``python -m workbench.runtime.serve_router RUN_DIR``) with one replica of it
behind. Requests are KServe V1 ``POST /v1/models/m:predict`` with one 4-float instance, sent by
an aiohttp client in this process on keep-alive connections.

- S1: latency p50 and p99 of sequential requests (8 rounds of 400 each way, interleaved).
- S2: requests/s at concurrency 16 (8 rounds of 1.5 s each way, interleaved).
S1, S2 and S4 ratios are medians of the ratios of rounds run side by side, so the load of
other work on a shared machine cancels out as far as it can.
- S3: failed requests while a rollout to revision 2 and an undo to revision 1 run under steady
  load (8 clients, until both have completed and at least 2,000 requests were sent).
- S4: ``Service.launch`` of the endpoint (what ``%%serve`` and ``workbench serve`` call: the
  record, the run directory, the supervisor, the router, the replica) to the first 200 answer of
  a predict request, against starting the bare replica process; 5 runs each, interleaved.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _common
import aiohttp

from workbench.service import Service
from workbench.store import Store, Workload

ROUNDS = 8  # S1 and S2 alternate short rounds (bare, router, router, bare, ...): the machine is shared
SEQUENTIAL = 400
CONCURRENCY = 16
SECONDS = 1.5
S3_MIN = 2000
LAUNCHES = 5
WORKLOAD = "serve-bench"
MODEL = "def predict(x):\n    return x * 2\n"
BODY = json.dumps({"instances": [[1.0, 2.0, 3.0, 4.0]]}).encode()
PATH = "/v1/models/m:predict"
HEADERS = {"content-type": "application/json"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Bench:
    def __init__(self, tmp: Path) -> None:
        self.run_dir = tmp / "runs" / WORKLOAD
        self.generation = 0
        for number in (1, 2):
            folder = self.run_dir / "revisions" / str(number)
            folder.mkdir(parents=True)
            (folder / "cell.py").write_text(MODEL)
            meta: dict[str, Any] = {"entry": "cell.py", "argv0": "cell.py", "args": [], "model_name": "m",
                    "model_uri": None, "env": {}, "max_body": 16 * 2**20}  # fmt: skip
            (folder / "meta.json").write_text(json.dumps(meta))
        self.store = Store(Path(os.environ["WORKBENCH_HOME"]) / "workbench.db")
        self.store.insert(
            Workload(id=WORKLOAD, kind="serve", backend="local", status="running", spec={"kind": "serve"},
                     run_dir=str(self.run_dir), created=time.time())
        )  # fmt: skip
        self.log = (tmp / "processes.log").open("ab")

    def desire(self, revision: int, port: int | None = None) -> int:
        self.generation += 1
        desired = {
            "generation": self.generation, "model_name": "m", "max_body": 16 * 2**20, "port": port,
            "replicas": 1, "autoscale": None, "target_concurrency": 4.0,
            "revisions": [{"revision": revision, "payload": f"revisions/{revision}", "traffic": 100}],
            "history": [],
        }  # fmt: skip
        tmp = self.run_dir / "desired.json.tmp"
        tmp.write_text(json.dumps(desired))
        os.replace(tmp, self.run_dir / "desired.json")
        return self.generation

    def start_router(self, port: int) -> subprocess.Popen[bytes]:
        self.desire(1, port)
        argv = [sys.executable, "-m", "workbench.runtime.serve_router", str(self.run_dir)]
        return subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)

    def start_bare(self, port: int) -> subprocess.Popen[bytes]:
        payload = str(self.run_dir / "revisions" / "1")
        argv = [sys.executable, "-m", "workbench.runtime.serve_replica", payload, "--host", "127.0.0.1"]
        argv += ["--port", str(port)]
        return subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)

    def info(self) -> dict[str, Any]:
        return self.store.get(WORKLOAD).info

    def settled(self, generation: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.info()
            if info.get("generation") == generation and info.get("rollout", {}).get("phase") == "complete":
                return
            if info.get("rollout", {}).get("phase") == "failed":
                raise _common.BenchError(f"rollout failed: {info['rollout']['message']}")
            time.sleep(0.02)
        raise _common.BenchError(f"generation {generation} did not complete: {self.info()}")


class _Running:
    """A launched endpoint, seen as a process for :func:`first_answer` (``poll``: None while it runs)."""

    def __init__(self, service: Service, name: str) -> None:
        self.service, self.name = service, name
        self.returncode: int | None = None

    def poll(self) -> int | None:
        workload = self.service.store.get(self.name)
        if workload.done:
            self.returncode = workload.exit_code if workload.exit_code is not None else -1
        return self.returncode


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def first_answer(url: str, proc: subprocess.Popen[bytes] | _Running, timeout: float = 60) -> float:
    """Seconds until a predict request first gets 200 (polled every 10 ms)."""
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        while time.perf_counter() - started < timeout:
            if proc.poll() is not None:
                raise _common.BenchError(f"the process exited with {proc.returncode}")
            try:
                async with session.post(url + PATH, data=BODY, headers=HEADERS) as resp:
                    await resp.read()
                    if resp.status == 200:
                        return time.perf_counter() - started
            except (aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(0.01)
    raise _common.BenchError(f"no answer from {url} within {timeout}s")


async def latencies(url: str, count: int) -> list[float]:
    out = []
    async with aiohttp.ClientSession() as session:
        for _ in range(50):  # warm-up
            async with session.post(url + PATH, data=BODY, headers=HEADERS) as resp:
                await resp.read()
        for _ in range(count):
            started = time.perf_counter()
            async with session.post(url + PATH, data=BODY, headers=HEADERS) as resp:
                await resp.read()
                if resp.status != 200:
                    raise _common.BenchError(f"answer {resp.status}")
            out.append(time.perf_counter() - started)
    return out


async def throughput(url: str, clients: int, seconds: float) -> float:
    done = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:

        async def client(until: float) -> None:
            nonlocal done
            while time.perf_counter() < until:
                async with session.post(url + PATH, data=BODY, headers=HEADERS) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise _common.BenchError(f"answer {resp.status}")
                done += 1

        await asyncio.gather(*(client(time.perf_counter() + 0.5) for _ in range(clients)))  # warm-up
        done = 0
        started = time.perf_counter()
        await asyncio.gather(*(client(started + seconds) for _ in range(clients)))
        return done / (time.perf_counter() - started)


async def steady(bench: Bench, url: str, router: subprocess.Popen[bytes]) -> tuple[int, int, dict[str, int]]:
    """Requests and failures of 8 clients through a rollout to revision 2 and an undo."""
    sent, failed, seen = 0, 0, {"1": 0, "2": 0}
    stop_at: list[bool] = []

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal sent, failed
        while not stop_at:
            sent += 1
            try:
                async with session.post(url + PATH, data=BODY, headers=HEADERS) as resp:
                    await resp.read()
                    if resp.status == 200:
                        seen[resp.headers["x-workbench-revision"]] += 1
                    else:
                        failed += 1
            except (aiohttp.ClientError, OSError):
                failed += 1

    async def driver() -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.5)
        for revision in (2, 1):
            generation = bench.desire(revision)
            router.send_signal(signal.SIGHUP)
            await loop.run_in_executor(None, bench.settled, generation)
            await asyncio.sleep(0.5)
        while sent < S3_MIN:
            await asyncio.sleep(0.05)
        stop_at.append(True)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(driver(), *(client(session) for _ in range(8)))
    return sent, failed, seen


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    with _common.isolated_home("serve") as tmp:
        bench = Bench(tmp)
        bare_port, router_port = free_port(), free_port()
        bare = bench.start_bare(bare_port)
        router = bench.start_router(router_port)
        bare_url, router_url = f"http://127.0.0.1:{bare_port}", f"http://127.0.0.1:{router_port}"
        try:
            asyncio.run(first_answer(bare_url, bare))
            asyncio.run(first_answer(router_url, router))
            bench.settled(1)
            p50s: dict[str, list[float]] = {"bare": [], "router": []}
            samples: dict[str, list[float]] = {"bare": [], "router": []}
            rates: dict[str, list[float]] = {"bare": [], "router": []}
            for round_ in range(ROUNDS):
                order = [("bare", bare_url), ("router", router_url)][:: 1 if round_ % 2 == 0 else -1]
                for name, url in order:
                    values = asyncio.run(latencies(url, SEQUENTIAL))
                    p50s[name].append(statistics.median(values))
                    samples[name].extend(values)
                for name, url in order:
                    rates[name].append(asyncio.run(throughput(url, CONCURRENCY, SECONDS)))
            stop(bare)
            sent, failed, seen = asyncio.run(steady(bench, router_url, router))
        finally:
            stop(router)
            if bare.poll() is None:
                stop(bare)
        s4: dict[str, list[float]] = {"bare": [], "router": []}
        service = Service()
        for run in range(LAUNCHES):
            for name in ("bare", "router"):
                port = free_port()
                if name == "bare":
                    proc = bench.start_bare(port)
                    try:
                        s4[name].append(asyncio.run(first_answer(f"http://127.0.0.1:{port}", proc)))
                    finally:
                        stop(proc)
                    continue
                started = time.perf_counter()
                spec = {"kind": "serve", "code": MODEL, "name": f"s4-{run}", "model_name": "m", "port": port}
                workload = service.launch(spec)
                try:
                    asyncio.run(first_answer(f"http://127.0.0.1:{port}", _Running(service, workload.id)))
                    s4[name].append(time.perf_counter() - started)
                finally:
                    service.delete(workload.id, force=True)
        service.close()
        bench.store.close()
    report(p50s, samples, rates, (sent, failed, seen), s4)


def paired(ours: list[float], theirs: list[float]) -> float:
    """The median of the ratios of rounds run side by side (the load of others cancels out)."""
    return _common.median([a / b for a, b in zip(ours, theirs, strict=True)])


def span(values: list[float], scale: float = 1e3, unit: str = " ms") -> str:
    return f"{min(values) * scale:.2f}..{max(values) * scale:.2f}{unit}"


def report(
    p50s: dict[str, list[float]],
    samples: dict[str, list[float]],
    rates: dict[str, list[float]],
    s3: tuple[int, int, dict[str, int]],
    s4: dict[str, list[float]],
) -> None:
    med = _common.median
    baseline = "the same replica (KServe ModelServer app, uvicorn) called directly"
    p50, p50_bare = med(p50s["router"]) * 1e3, med(p50s["bare"]) * 1e3
    p99, p99_bare = percentile(samples["router"], 0.99) * 1e3, percentile(samples["bare"], 0.99) * 1e3
    ratio = paired(p50s["router"], p50s["bare"])
    print(
        f"S1 serve latency (V1 predict, sequential, {ROUNDS} rounds of {SEQUENTIAL}): p50 {p50:.2f} ms, "
        f"p99 {p99:.2f} ms (baseline: {baseline}: p50 {p50_bare:.2f} ms, p99 {p99_bare:.2f} ms); "
        f"p50 ratio {ratio:.2f}x (median of paired rounds) target <= 1.3x: {_common.verdict(ratio, 1.3)}; "
        f"p99 ratio {p99 / p99_bare:.2f}x; the router adds {p50 - p50_bare:.2f} ms at p50"
    )
    rate, rate_bare = med(rates["router"]), med(rates["bare"])
    ratio = paired(rates["router"], rates["bare"])
    print(
        f"S2 serve throughput (concurrency {CONCURRENCY}, {ROUNDS} rounds of {SECONDS:g} s): "
        f"{rate:.0f} req/s (baseline: {baseline}: {rate_bare:.0f} req/s); "
        f"ratio {ratio:.2f}x (median of paired rounds) target >= 0.7x: {'OK' if ratio >= 0.7 else 'MISSED'}"
    )
    sent, failed, seen = s3
    print(
        f"S3 failed requests through a rollout (r1 -> r2) and an undo (-> r1) under 8 steady clients: "
        f"{failed} of {sent} (answers by revision: {seen}) (baseline: none) target 0 of >= {S3_MIN}: "
        f"{'OK' if failed == 0 and sent >= S3_MIN else 'MISSED'}"
    )
    up, up_bare = med(s4["router"]), med(s4["bare"])
    ratio = paired(s4["router"], s4["bare"])
    print(
        f"S4 serve launch (Service.launch) to the first ready answer: {_common.ms(up)} "
        f"(baseline: the bare replica process started by hand: {_common.ms(up_bare)}); "
        f"ratio {ratio:.2f}x (median of paired runs) target <= 1.5x: {_common.verdict(ratio, 1.5)}"
    )
    print(
        f"   spread: S1 p50 router {span(p50s['router'])}, bare {span(p50s['bare'])}; "
        f"S2 router {span(rates['router'], 1, ' req/s')}, bare {span(rates['bare'], 1, ' req/s')}; "
        f"S4 router {span(s4['router'], 1, ' s')}, bare {span(s4['bare'], 1, ' s')}"
    )


if __name__ == "__main__":
    _common.main_guard(main)
