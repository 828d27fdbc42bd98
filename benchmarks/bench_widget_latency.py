"""O2: time from a workload's change in the shared store to the cell's widget showing it.

A python3 kernel (jupyter_client) with widgets on (``WORKBENCH_WIDGETS=1``) shows the widget
of a record this script wrote to the store (``workbench.widgets.show``), as a launch does.
Then, five times each, this process changes the store as a supervisor would, and the clock
runs until the kernel sends the widget's update (the comm message the front end renders)
on its iopub channel:

- a status change (running → succeeded), the kernel idle;
- the same while the kernel is busy running a cell (as while ``%%pod`` streams its logs);
- a new resource sample (its CPU and memory figures reach the plot).

What a browser then takes to paint the update is not included (B8 measures that path for
the sidebar).
"""

from __future__ import annotations

import queue
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RUNS = 5
TARGET = 1.0  # seconds (BENCHMARKS.md, O2)


def wait_for(kernel: _common.BenchKernel, seen: Callable[[str], bool], timeout: float = 10.0) -> float:
    """Seconds until a widget update whose value ``seen`` accepts arrives on iopub."""
    started = time.monotonic()
    while True:
        left = timeout - (time.monotonic() - started)
        if left <= 0:
            raise _common.BenchError(f"no widget update in {timeout}s\n{kernel.log_tail()}")
        try:
            msg = kernel.kc.get_iopub_msg(timeout=left)
        except queue.Empty:
            continue
        if msg["msg_type"] in ("comm_open", "comm_msg"):
            value = msg["content"].get("data", {}).get("state", {}).get("value")
            if isinstance(value, str) and seen(value):
                return time.monotonic() - started


def drain(kernel: _common.BenchKernel) -> None:
    while True:
        try:
            kernel.kc.get_iopub_msg(timeout=0.3)
        except queue.Empty:
            return


def record(name: str, tmp: Path) -> Any:
    from workbench.store import Workload

    now = time.time()
    return Workload(id=name, kind="pod", backend="local", status="running", spec={"kind": "pod"},
                    run_dir=str(tmp / name), created=now, started=now)  # fmt: skip


def main() -> None:
    import os

    from workbench.config import load_settings
    from workbench.store import Store

    status_idle, status_busy, usage = [], [], []
    with _common.isolated_home("o2") as tmp:
        os.environ["WORKBENCH_WIDGETS"] = "1"
        store = Store(load_settings().db_path)
        kernel = _common.BenchKernel(tmp)
        try:
            kernel.run("from workbench.widgets import show")
            for i in range(RUNS * 2):
                busy = i >= RUNS
                name = f"o2-{i}"
                store.insert(record(name, tmp))
                kernel.run(f"show({name!r})")
                wait_for(kernel, lambda v: 'data-status="running"' in v)  # the widget is up
                drain(kernel)
                if busy:
                    kernel.kc.execute("import time; time.sleep(3)")  # the kernel runs a cell meanwhile
                    time.sleep(0.3)
                sample = {"t": time.time(), "cpu_seconds": 1.0, "cpu_percent": 42.0 + i, "rss_bytes": 2**20,
                          "threads": 1}  # fmt: skip
                time.sleep(random.uniform(0, 0.25))  # at any point of the watcher's poll
                started = time.monotonic()
                store.record_usage(name, sample)
                wait_for(kernel, lambda v, i=i: f'data-cpu-percent="{42.0 + i}"' in v)
                usage.append(time.monotonic() - started)
                time.sleep(random.uniform(0, 0.25))
                started = time.monotonic()
                store.finish(name, "succeeded", exit_code=0, message="")
                wait_for(kernel, lambda v: 'data-status="succeeded"' in v)
                (status_busy if busy else status_idle).append(time.monotonic() - started)
                drain(kernel)
                if busy:
                    time.sleep(3)
                    drain(kernel)
        finally:
            kernel.stop()
            store.close()
    for label, values in (
        ("status change shown, kernel idle", status_idle),
        ("status change shown, kernel running a cell", status_busy),
        ("resource sample shown", usage),
    ):
        median = _common.median(values)
        print(
            f"O2 {label}: median {_common.ms(median)} over {len(values)} (spread {_common.ms(min(values))}.."
            f"{_common.ms(max(values))}) target <= 1 s: {_common.verdict(median, TARGET)}"
        )


if __name__ == "__main__":
    _common.main_guard(main)
