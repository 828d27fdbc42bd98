"""How a local Dask cluster ended is named in its record: idle, a client's shutdown, or a failure."""

from __future__ import annotations

import os
import signal

from workbench.runtime.dask_cluster import UNCLOSED, describe_end
from workbench.service import Service


def start(service: Service) -> tuple[str, object]:
    workload = service.launch({"kind": "dask", "workers": 1})
    client = service.dask_client(workload.id)
    assert client.submit(sum, [1, 2]).result(timeout=60) == 3  # type: ignore[attr-defined]
    return workload.id, client


def test_a_killed_scheduler_is_a_failure_that_says_so(service: Service) -> None:
    name, client = start(service)
    scheduler_pid = client.run_on_scheduler(os.getpid)  # type: ignore[attr-defined]
    assert scheduler_pid == service.get(name).pid  # the scheduler runs in the workload's main process
    client.close()  # type: ignore[attr-defined]
    os.kill(scheduler_pid, signal.SIGKILL)
    final = service.wait(name, timeout=60)
    assert (final.status, final.exit_code) == ("failed", -signal.SIGKILL)
    assert final.message == f"killed by signal 9 (SIGKILL): {UNCLOSED}"


def test_a_scheduler_closed_by_something_else_is_a_failure_with_its_reason(service: Service) -> None:
    name, client = start(service)

    def close_soon(dask_scheduler) -> None:  # type: ignore[no-untyped-def]
        import asyncio

        loop = asyncio.get_running_loop()
        loop.call_later(0.2, lambda: asyncio.ensure_future(dask_scheduler.close(reason="disk-quota-gone")))

    client.run_on_scheduler(close_soon)  # type: ignore[attr-defined]
    final = service.wait(name, timeout=60)
    client.close()  # type: ignore[attr-defined]
    assert (final.status, final.exit_code) == ("failed", 1)
    assert (
        final.message
        == "exited with code 1: the Dask scheduler closed unexpectedly (reason: disk-quota-gone)"
    )


def test_a_client_shutdown_is_named_and_not_mistaken_for_idleness(service: Service) -> None:
    name, client = start(service)
    client.shutdown()  # type: ignore[attr-defined]
    final = service.wait(name, timeout=60)
    assert (final.status, final.exit_code) == ("succeeded", 0)
    assert final.message == "shut down by a client (Client.shutdown())"


def test_each_end_has_its_own_words() -> None:
    assert describe_end("idle-timeout-exceeded", "closed", 2.0) == ("shut down after being idle for 2.0s", 0)
    assert describe_end(None, "running", None, signal.SIGINT) == (
        "stopped by SIGINT: the scheduler and its workers were closed",
        128 + signal.SIGINT,
    )
    assert describe_end("failure-to-start-<class 'OSError'>", "failed", None) == (
        "the Dask scheduler failed (failure-to-start-<class 'OSError'>)",
        1,
    )
