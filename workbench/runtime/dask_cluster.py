"""A local Dask cluster as one supervised workload.

``python -m workbench.runtime.dask_cluster RUN_DIR`` reads ``payload/dask.json`` and runs a
Dask scheduler in this process and each worker under its own nanny (a child process that
restarts a worker that dies). The scheduler's address and dashboard go into the workload's
record, so any kernel, the CLI and the Jupyter server can connect. Scaling and adaptivity
are requested through two handlers added to the scheduler (``workbench_scale``,
``workbench_adapt``). With an idle timeout the scheduler closes itself when nothing has run
for that long, and the process exits.

GPUs: the record holds the GPU indices granted to the cluster; each worker gets its own slice
of them through ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from ..store import Store
from . import FINAL_MESSAGE


class _Slices:
    """Hands out each worker's GPU slice (``gpus_per_worker`` indices) and takes it back."""

    def __init__(self, gpus: list[str], per_worker: int) -> None:
        self.per_worker = per_worker
        self.free = list(gpus)
        self.taken: dict[str, list[str]] = {}

    def take(self, worker: str) -> str:
        if not self.per_worker:
            return ""
        if len(self.free) < self.per_worker:
            raise RuntimeError(f"no GPUs left for worker {worker}: the cluster was granted too few")
        chunk, self.free = self.free[: self.per_worker], self.free[self.per_worker :]
        self.taken[worker] = chunk
        return ",".join(chunk)

    def grow(self, gpus: list[str]) -> None:
        known = set(self.free) | {g for chunk in self.taken.values() for g in chunk}
        self.free += [g for g in gpus if g not in known]

    def release(self, worker: str) -> None:
        self.free += self.taken.pop(worker, [])


async def serve(run_dir: Path, config: dict[str, Any], store: Store, workload_id: str) -> str:
    from distributed import Nanny, Scheduler, SpecCluster

    granted = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]  # the whole grant
    slices = _Slices(granted, int(config.get("gpus_per_worker", 0)))
    worker_options = {
        "nthreads": int(config["threads"]),
        "memory_limit": config.get("memory_limit") or "auto",
    }

    class WorkbenchCluster(SpecCluster):
        """Gives every new worker its own GPU slice."""

        def new_worker_spec(self) -> dict[str, Any]:
            spec: dict[str, Any] = super().new_worker_spec()
            return {
                name: {
                    **item,
                    "options": {**item["options"], "env": {"CUDA_VISIBLE_DEVICES": slices.take(str(name))}},
                }
                for name, item in spec.items()
            }

        async def _correct_state_internal(self) -> None:
            await super()._correct_state_internal()
            for name in set(slices.taken) - {str(n) for n in self.worker_spec}:
                slices.release(name)  # a removed worker's GPUs go back to the pool

    scheduler_options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "dashboard_address": "127.0.0.1:0",
    }
    if config.get("idle_timeout"):
        scheduler_options["idle_timeout"] = float(config["idle_timeout"])
    template = {"cls": Nanny, "options": worker_options}
    workers = {}
    for i in range(int(config["workers"])):
        workers[str(i)] = {
            "cls": Nanny,
            "options": {**worker_options, "env": {"CUDA_VISIBLE_DEVICES": slices.take(str(i))}},
        }
    cluster: Any = await WorkbenchCluster(
        workers=workers,
        scheduler={"cls": Scheduler, "options": scheduler_options},
        worker=template,
        asynchronous=True,
        name=workload_id,
    )
    scheduler: Any = cluster.scheduler

    def scale(n: int, gpus: list[str] | None = None) -> int:
        if gpus:
            slices.grow(gpus)
        cluster.scale(int(n))
        return int(n)

    def adapt(minimum: int, maximum: int, gpus: list[str] | None = None) -> list[int]:
        if gpus:
            slices.grow(gpus)
        cluster.adapt(minimum=int(minimum), maximum=int(maximum))
        return [int(minimum), int(maximum)]

    scheduler.handlers["workbench_scale"] = scale
    scheduler.handlers["workbench_adapt"] = adapt
    if config.get("adapt"):
        cluster.adapt(minimum=int(config["adapt"]["minimum"]), maximum=int(config["adapt"]["maximum"]))
    dashboard_port = scheduler.http_server.port if scheduler.http_server else None
    info = {
        "address": scheduler.address,
        "dashboard": f"http://127.0.0.1:{dashboard_port}/status" if dashboard_port else None,
        "dashboard_port": dashboard_port,
        # through the Jupyter server (jupyter-server-proxy), relative to its base URL
        "dashboard_path": f"proxy/{dashboard_port}/status" if dashboard_port else None,
    }
    store.update(workload_id, info=info)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reason = ""
    while not stop.is_set():
        if scheduler.status.name in ("closing", "closed", "failed"):
            reason = f"shut down after being idle for {config.get('idle_timeout')}s"
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.5)
    # after an idle close the scheduler is gone and a full close would wait on it for its timeout;
    # what is left (nannies, workers) is in our process group, which the supervisor ends anyway
    with contextlib.suppress(Exception):
        await asyncio.wait_for(cluster.close(timeout=5), 3 if reason else 15)
    return reason


def main(argv: list[str]) -> int:
    run_dir = Path(argv[0])
    config: dict[str, Any] = json.loads((run_dir / "payload" / "dask.json").read_text())
    home = Path(os.environ["WORKBENCH_HOME"])
    store = Store(home / "workbench.db")
    workload_id = os.environ["WORKBENCH_WORKLOAD_ID"]
    reason = asyncio.run(serve(run_dir, config, store, workload_id))
    if reason:
        (run_dir / FINAL_MESSAGE).write_text(reason)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
