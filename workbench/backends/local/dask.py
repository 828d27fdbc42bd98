"""Scaling a local Dask cluster: GPUs granted in the store, then asked of its scheduler."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ...errors import BackendUnavailable, Conflict, SpecError, Timeout
from ...store import Store, Workload
from .gpus import allocate

#: Longest pause between two reads of the record while a cluster starts: a read costs well
#: under a millisecond, and the address is wanted the moment it is there.
ADDRESS_POLL = 0.02


def call_scheduler(address: str, op: str, timeout: float = 30.0, **kwargs: Any) -> Any:
    """Call one of the scheduler's handlers (in a thread: the caller may run an event loop)."""

    async def call() -> Any:
        from distributed.core import rpc

        async with rpc(address, timeout=timeout) as remote:
            return await getattr(remote, op)(**kwargs)

    with ThreadPoolExecutor(1) as pool:
        try:
            return pool.submit(asyncio.run, call()).result(timeout + 5)
        except (OSError, TimeoutError) as exc:
            raise BackendUnavailable(
                f"cannot reach the Dask scheduler at {address}: {exc}",
                value=address,
                hint="`workbench describe NAME` shows whether the cluster still runs",
            ) from None


def wait_for_address(store: Store, workload: Workload, timeout: float = 60.0) -> Workload:
    """The record once the cluster has published its scheduler address."""
    if workload.kind != "dask":
        raise SpecError(
            f"{workload.id} is a {workload.kind} workload; this applies to Dask clusters",
            value=workload.id,
            hint="`workbench dask ls` lists the clusters",
        )
    deadline = time.monotonic() + timeout
    pause = 0.01
    while True:
        current = store.get(workload.id)
        if current.done:
            raise Conflict(
                f"Dask cluster {current.id} is {current.status}: {current.message or 'no reason recorded'}",
                value=current.id,
                hint="start it again with `%dask --name NAME` or `workbench dask up --name NAME`",
            )
        if current.info.get("address"):
            return current
        if time.monotonic() > deadline:
            raise Timeout(f"Dask cluster {current.id} did not start within {timeout:.0f}s", value=current.id)
        time.sleep(pause)
        pause = min(pause * 2, ADDRESS_POLL)


def _regrant(store: Store, workload: Workload, host: list[str], workers: int) -> list[str]:
    per_worker = int(workload.spec.get("resources", {}).get("gpus") or 0)
    if not per_worker:
        return []
    wanted = per_worker * workers

    def choose(in_use: dict[str, str]) -> list[str]:
        own = list(workload.gpus)
        if wanted <= len(own):
            return own  # keep them: workers that go away hand their slices back to the pool
        return own + allocate(wanted - len(own), [g for g in host if g not in own], in_use)

    return store.regrant_gpus(workload.id, choose)


def scale(store: Store, workload: Workload, host: list[str], workers: int) -> Workload:
    if workers < 0:
        raise SpecError(f"cannot scale to {workers} workers", value=workers, hint="give 0 or more")
    workload = wait_for_address(store, workload)
    gpus = _regrant(store, workload, host, workers)
    call_scheduler(workload.info["address"], "workbench_scale", n=workers, gpus=gpus)
    store.update(workload.id, info={**workload.info, "requested_workers": workers, "adapt": None})
    return store.get(workload.id)


def adapt(store: Store, workload: Workload, host: list[str], minimum: int, maximum: int) -> Workload:
    if not 0 <= minimum <= maximum or maximum < 1:
        raise SpecError(
            f"adapt {minimum}:{maximum} must be MIN:MAX with 0 <= MIN <= MAX and MAX >= 1",
            value=f"{minimum}:{maximum}",
            hint="e.g. 1:8",
        )
    workload = wait_for_address(store, workload)
    gpus = _regrant(store, workload, host, maximum)
    call_scheduler(workload.info["address"], "workbench_adapt", minimum=minimum, maximum=maximum, gpus=gpus)
    store.update(workload.id, info={**workload.info, "adapt": [minimum, maximum]})
    return store.get(workload.id)
