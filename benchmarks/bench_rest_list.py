"""B7: latency of the REST list endpoint with 1,000 workloads in the store; M2 alongside.

A real `jupyter server` (with the workbench extension) runs on loopback over a store holding
1,000 finished workloads; `GET /workbench/api/workloads` is timed 30 times after two warm-up
calls. M2 (extra resident memory of the server with the extension and those workloads) is
measured against the same server started without the extension.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import _common

N = 1000
CALLS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fill_store(home: Path) -> None:
    from workbench.store import Store, Workload

    store = Store(home / "workbench.db")
    now = time.time()
    for i in range(N):
        store.insert(
            Workload(
                id=f"w{i:04d}", kind=("pod", "dask", "train")[i % 3], backend="local", status="succeeded",
                spec={"kind": "pod", "resources": {"cpu": "1"}}, run_dir=str(home / "runs" / f"w{i:04d}"),
                created=now - i, started=now - i, ended=now - i + 1, exit_code=0,
            )
        )  # fmt: skip
    store.close()


def start_server(root: Path, extension: bool) -> tuple[subprocess.Popen[bytes], str, str]:
    port, token = free_port(), secrets.token_hex(8)
    argv = [
        str(Path(sys.executable).parent / "jupyter"), "server", "--no-browser", f"--port={port}",
        "--ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        f"--ServerApp.jpserver_extensions=workbench.server={extension}",
    ]  # fmt: skip
    if os.getuid() == 0:
        argv.append("--allow-root")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2).read()
            return proc, url, token
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise _common.BenchError("jupyter server did not start") from None
            time.sleep(0.2)


def get(url: str, token: str) -> tuple[float, int]:
    request = urllib.request.Request(
        f"{url}/workbench/api/workloads", headers={"Authorization": f"token {token}"}
    )
    started = time.perf_counter()
    body = urllib.request.urlopen(request, timeout=30).read()
    return time.perf_counter() - started, len(json.loads(body)["workloads"])


def main() -> None:
    with _common.isolated_home("b7") as tmp:
        fill_store(Path(os.environ["WORKBENCH_HOME"]))
        bare, url, token = start_server(tmp, extension=False)
        time.sleep(1.0)
        bare_rss = _common.rss_bytes(bare.pid) or 0
        bare.terminate()
        bare.wait(30)
        server, url, token = start_server(tmp, extension=True)
        try:
            for _ in range(2):
                _, count = get(url, token)
            if count != N:
                raise _common.BenchError(f"listed {count} workloads, expected {N}")
            times = [get(url, token)[0] for _ in range(CALLS)]
            rss = _common.rss_bytes(server.pid) or 0
        finally:
            server.terminate()
            server.wait(30)
    median = _common.median(times)
    print(
        f"B7 GET /workbench/api/workloads with {N} workloads: median {_common.ms(median)} over {CALLS} calls "
        f"(spread {_common.ms(min(times))}..{_common.ms(max(times))}) target <= 50 ms: "
        f"{_common.verdict(median, 0.050)}"
    )
    extra = rss - bare_rss
    print(
        f"M2 server RSS with the extension and {N} workloads: {_common.mb(rss)} "
        f"(baseline: the same server without the extension {_common.mb(bare_rss)}); +{_common.mb(extra)} "
        f"target <= 50 MB: {_common.verdict(extra / 2**20, 50)}"
    )


if __name__ == "__main__":
    _common.main_guard(main)
