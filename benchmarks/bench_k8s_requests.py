"""B3: Kubernetes API requests needed to keep N workloads' status current.

Against the API emulator from tests/ (the real `kubernetes` client talks HTTP to it), N pod
workloads are launched into a Kueue queue (suspended Jobs: nothing runs, so N can be 1000).
Then five status rounds are made two ways, counting the requests the emulator serves:

- workbench: a fresh tracker's list+watch, then ``Service.list()`` five times;
- baseline: one GET per workload per round (the "poll every object" approach).

Target: constant in N.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import _common

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROUNDS = 5


def measure(n: int) -> tuple[int, int, float]:
    from tests.k8s.emulator import Emulator
    from tests.k8s.fixtures import write_kubeconfig
    from workbench.config import load_settings
    from workbench.service import Service

    emulator = Emulator().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["WORKBENCH_KUBERNETES__KUBECONFIG"] = str(write_kubeconfig(emulator, Path(tmp) / "kc"))
            os.environ["WORKBENCH_BACKEND"] = "kubernetes"
            service = Service(load_settings())
            started = time.perf_counter()
            for i in range(n):
                service.launch({"kind": "pod", "code": "pass", "name": f"w{i}", "queue": "bench"})
            launch_s = time.perf_counter() - started
            backend = service.backend("kubernetes")
            backend._tracker = None  # type: ignore[attr-defined]  # start from nothing: count the list+watch too
            emulator.reset_requests()
            backend.tracker.watch()  # type: ignore[attr-defined]
            for _ in range(ROUNDS):
                listed = service.list()
                if len(listed) != n or any(w.status != "pending" for w in listed):
                    raise _common.BenchError(f"expected {n} pending workloads, got {len(listed)}")
                time.sleep(0.2)
            ours = len(emulator.requests)
            emulator.reset_requests()
            client = backend.client  # type: ignore[attr-defined]
            for _ in range(ROUNDS):
                for i in range(n):
                    client.get("Job", f"w{i}")
            baseline = len(emulator.requests)
            backend.tracker.stop()  # type: ignore[attr-defined]
            service.close()
            return ours, baseline, launch_s
    finally:
        emulator.stop()


def main() -> None:
    results = {}
    for n in (10, 100, 1000):
        with _common.isolated_home(f"b3-{n}"):
            ours, baseline, launch_s = measure(n)
            results[n] = ours
            print(
                f"B3 N={n:>4}: {ours} API requests for {ROUNDS} status rounds "
                f"(baseline: one GET per workload per round = {baseline}; ratio {ours / baseline:.4f}); "
                f"launching {n} took {launch_s:.1f} s"
            )
    constant = max(results.values()) - min(results.values()) <= 2
    verdict = "OK (constant in N)" if constant else "NOT constant"
    print(f"B3 requests across N: {sorted(results.items())} target constant in N: {verdict}")


if __name__ == "__main__":
    _common.main_guard(main)
