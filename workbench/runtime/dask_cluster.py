"""A local Dask cluster as one supervised workload.

``python -m workbench.runtime.dask_cluster RUN_DIR`` reads ``payload/dask.json`` and runs a
Dask scheduler in this process and each worker under its own nanny (a child process that
restarts a worker that dies). The scheduler's address and dashboard go into the workload's
record, so any kernel, the CLI and the Jupyter server can connect. Scaling and adaptivity
are requested through two handlers added to the scheduler (``workbench_scale``,
``workbench_adapt``). With an idle timeout the scheduler closes itself when nothing has run
for that long, and the process exits.

Starting fast: the workers fork from a warm server (see :mod:`.dask_workers`), the record is
written as soon as the first workers registered, and the Bokeh dashboard (about a second of
imports) is attached just after; its link works from the start.

The final message names why the cluster ended: its idle timeout or a client's
``Client.shutdown()`` (both a normal end, exit 0), a signal (a cancel or a timeout, which the
supervisor names), or anything else that closed or failed the scheduler, with its reason or
exception (a failure, exit 1). While the cluster runs, the final message already says the
scheduler ended without closing, which is what the record keeps when this process is killed.

GPUs: the record holds the GPU indices granted to the cluster; each worker gets its own slice
of them through ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import FINAL_MESSAGE, dask_workers

if TYPE_CHECKING:  # imported where used: the workers' server starts before anything heavy
    from ..store import Store


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


#: Why the scheduler closed, as distributed names it, for the ends that are not failures.
IDLE_REASON = "idle-timeout-exceeded"
CLIENT_REASON = "workbench-client-shutdown"
#: The final message while the cluster runs: what the record says if this process is killed.
UNCLOSED = "the Dask scheduler ended without closing (its process was killed or crashed)"


def describe_end(
    reason: str | None, status: str, idle_timeout: float | None, signum: int = signal.SIGTERM
) -> tuple[str, int]:
    """The final message for how the scheduler ended, and the exit status that goes with it.

    Args:
        reason: the reason passed to ``Scheduler.close``, e.g. ``idle-timeout-exceeded`` or
            ``failure-to-start-…``; None when it was not closed but this process was stopped
            by signal ``signum`` (a cancel or a timeout, which the supervisor names itself).
        status: the scheduler's status name then (``closed``, ``failed``, …).
        idle_timeout: the cluster's idle timeout in seconds, if any.
        signum: the signal that stopped this process, when ``reason`` is None.
    """
    if reason is None:
        name = signal.Signals(signum).name
        return f"stopped by {name}: the scheduler and its workers were closed", 128 + signum
    if reason == IDLE_REASON:
        return f"shut down after being idle for {idle_timeout}s", 0
    if reason == CLIENT_REASON:
        return "shut down by a client (Client.shutdown())", 0
    if status == "failed":
        return f"the Dask scheduler failed ({reason})", 1
    return f"the Dask scheduler closed unexpectedly (reason: {reason})", 1


async def serve(
    run_dir: Path,
    config: dict[str, Any],
    store: Store,
    workload_id: str,
) -> tuple[str, int]:
    """Run the cluster until it is stopped (a signal) or its scheduler closes.

    Returns:
        The final message and this process's exit status (see :func:`describe_end`).
    """
    import asyncio

    import dask.config
    from distributed import Nanny, Scheduler, SchedulerPlugin, SpecCluster

    from . import dask_dashboard

    class WorkbenchScheduler(Scheduler):
        """Remembers why it was closed (distributed only logs it)."""

        close_reason: str | None = None

        async def close(self, timeout: float | None = None, reason: str = "unknown") -> None:
            if self.close_reason is None and self.status.name not in ("closing", "closed"):
                self.close_reason = reason
            await super().close(timeout=timeout, reason=reason)

    granted = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]  # the whole grant
    slices = _Slices(granted, int(config.get("gpus_per_worker", 0)))
    per_worker = {"nthreads": int(config["threads"]), "memory_limit": config.get("memory_limit") or "auto"}

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
        "dashboard": False,  # attached once the cluster is up (dask_dashboard.attach)
    }
    if config.get("idle_timeout"):
        scheduler_options["idle_timeout"] = float(config["idle_timeout"])
    workers = {}
    for i in range(int(config["workers"])):
        workers[str(i)] = {
            "cls": Nanny,
            "options": {**per_worker, "env": {"CUDA_VISIBLE_DEVICES": slices.take(str(i))}},
        }
    registered = asyncio.Event()

    class Registered(SchedulerPlugin):
        """Tells when the first workers are in: the nannies learn it up to 50 ms later (a poll)."""

        def add_worker(self, scheduler: Any, worker: str) -> None:
            if len(scheduler.workers) >= len(workers):
                registered.set()

    scheduler_options["plugins"] = [Registered()]
    routes = dask.config.get("distributed.scheduler.http.routes")
    late = [m for m in routes if m in dask_dashboard.LATE_ROUTES]
    with dask.config.set({"distributed.scheduler.http.routes": [m for m in routes if m not in late]}):
        cluster: Any = WorkbenchCluster(
            workers=workers,
            scheduler={"cls": WorkbenchScheduler, "options": scheduler_options},
            worker={"cls": Nanny, "options": per_worker},
            asynchronous=True,
            name=workload_id,
        )
        up = asyncio.ensure_future(cluster)  # the scheduler, then the nannies and their workers
        waiting = asyncio.ensure_future(registered.wait())
        await asyncio.wait([up, waiting], return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if up.done():
        up.result()  # the cluster failed to start: its exception
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

    async def terminate() -> None:  # Client.shutdown(): a requested end, told apart from others
        await scheduler.close(reason=CLIENT_REASON)

    scheduler.handlers["workbench_scale"] = scale
    scheduler.handlers["workbench_adapt"] = adapt
    scheduler.handlers["terminate"] = terminate
    dashboard_port = scheduler.http_server.port if scheduler.http_server else None
    dashboard = dask_dashboard.attach(scheduler, late)  # holds its requests before anyone knows the port
    info = {
        "address": scheduler.address,
        "dashboard": f"http://127.0.0.1:{dashboard_port}/status" if dashboard_port else None,
        "dashboard_port": dashboard_port,
        # through the Jupyter server (jupyter-server-proxy), relative to its base URL
        "dashboard_path": f"proxy/{dashboard_port}/status" if dashboard_port else None,
    }
    store.merge_info(workload_id, None, info)  # what the launch recorded (an MLflow run) stays
    (run_dir / FINAL_MESSAGE).write_text(UNCLOSED)
    stop = asyncio.Event()
    stopped_by: list[int] = []

    def on_signal(signum: int) -> None:
        stopped_by.append(signum)
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    await up  # the nannies know their workers started (or the start failed: its exception)
    if config.get("adapt"):
        cluster.adapt(minimum=int(config["adapt"]["minimum"]), maximum=int(config["adapt"]["maximum"]))
    closed = False
    live = None
    while not stop.is_set():
        if scheduler.status.name in ("closing", "closed", "failed"):
            closed = True
            break
        if len(scheduler.workers) != live:  # the live worker count, for the sidebar and the widget
            live = len(scheduler.workers)
            with contextlib.suppress(Exception):
                store.merge_info(workload_id, None, {"workers_live": live})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.5)
    idle = float(config["idle_timeout"]) if config.get("idle_timeout") else None
    dashboard.cancel()  # when it is still loading
    reason = (scheduler.close_reason or "unknown") if closed else None
    message, code = describe_end(reason, scheduler.status.name, idle, *stopped_by[:1])
    # after the scheduler closed a full close would wait on it for its timeout; what is left
    # (nannies, workers) is in our process group and cgroup, which the supervisor ends anyway
    with contextlib.suppress(Exception):
        await asyncio.wait_for(cluster.close(timeout=5), 3 if closed else 15)
    return message, code


def main(argv: list[str]) -> int:
    started = dict(os.environ)  # with what the backend added for this interpreter's start
    early = dask_workers.start(started)  # first: a fresh workers' server imports alongside this one
    run_dir = Path(argv[0])
    final = run_dir / FINAL_MESSAGE
    try:
        dask_workers.use(early, started)  # imports distributed; a forked server is forked here
        import asyncio

        from ..store import Store

        config: dict[str, Any] = json.loads((run_dir / "payload" / "dask.json").read_text())
        store = Store(Path(os.environ["WORKBENCH_HOME"]) / "workbench.db")
        message, code = asyncio.run(serve(run_dir, config, store, os.environ["WORKBENCH_WORKLOAD_ID"]))
    except Exception as exc:
        import traceback

        traceback.print_exc()
        message, code = f"the Dask cluster failed: {type(exc).__name__}: {exc}", 1
    final.write_text(message)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
