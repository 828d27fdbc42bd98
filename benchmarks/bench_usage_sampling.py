"""O1: CPU of the supervisor with resource sampling on (the default period) vs off.

Two local pods that sleep for ``SLEEP_S`` seconds are launched side by side through
``workbench.service.Service``: one with sampling at the default period (``usage_period``
5 s), one with it off (``usage_period`` 0). Once both run, the CPU time (user + system, all
threads) of each supervisor is read from ``/proc/PID/stat`` at the start and the end of a
``WINDOW_S`` window; the figure is that CPU time as % of one core over the window. Sampling's
own cost is the difference on - off (median of ``REPETITIONS`` pairs). The first sample,
and psutil's import with it, falls inside the window. Alongside, informative: each
supervisor's peak resident memory (VmHWM) at the end of the window (M3 with sampling on) and
the samples recorded.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import _common as c

from workbench.config import load_settings
from workbench.service import Service
from workbench.store import ACTIVE, RUNNING

REPETITIONS = 3
SLEEP_S = 24.0
WINDOW_S = 20.0
O1_TARGET = 1.0  # % of one core (BENCHMARKS.md)
M3_TARGET = 20 * 2**20
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system time of a process (every thread), from /proc/PID/stat."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        raise c.BenchError(f"process {pid} ended before its CPU time could be read") from None
    fields = text[text.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # fields 14 and 15 of stat


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise c.BenchError(f"no VmHWM for process {pid}")


def launch(service: Service, period: str, cwd: Path) -> str:
    """A sleeping pod; the environment carries the period too (the supervisor inherits it)."""
    os.environ["WORKBENCH_USAGE_PERIOD"] = period
    try:
        code = f"import time\ntime.sleep({SLEEP_S})\n"
        return service.launch({"kind": "pod", "code": code}, cwd=str(cwd)).id
    finally:
        del os.environ["WORKBENCH_USAGE_PERIOD"]


def supervisor_of(service: Service, name: str) -> int:
    deadline = time.monotonic() + 30
    while True:
        record = service.get(name)
        if record.status == RUNNING and record.supervisor_pid:
            return record.supervisor_pid
        if record.status not in ACTIVE:
            raise c.BenchError(f"{name} ended before running: {record.status} {record.message}")
        if time.monotonic() > deadline:
            raise c.BenchError(f"{name} still {record.status} after 30 s")
        time.sleep(0.01)


def pair(on: Service, off: Service, cwd: Path) -> dict[str, float]:
    """One pod sampled and one not, side by side: CPU % of each supervisor, memory, samples."""
    names = {"on": launch(on, "5", cwd), "off": launch(off, "0", cwd)}
    try:
        pids = {key: supervisor_of(on, name) for key, name in names.items()}
        start = time.monotonic()
        before = {key: cpu_seconds(pid) for key, pid in pids.items()}
        time.sleep(WINDOW_S)
        after = {key: cpu_seconds(pid) for key, pid in pids.items()}
        elapsed = time.monotonic() - start
        memory = {key: peak_rss(pid) for key, pid in pids.items()}
        for name in names.values():
            if on.get(name).status != RUNNING:
                raise c.BenchError(f"{name} stopped while being measured")
        samples = (on.usage(names["on"])["summary"] or {}).get("samples", 0)
        if on.usage(names["off"])["summary"] is not None:
            raise c.BenchError("the pod with sampling off has samples")
    finally:
        for name in names.values():
            on.cancel(name)
            on.delete(name, force=True)
    return {
        "on": 100 * (after["on"] - before["on"]) / elapsed,
        "off": 100 * (after["off"] - before["off"]) / elapsed,
        "rss_on": memory["on"],
        "rss_off": memory["off"],
        "samples": samples,
    }


def main() -> None:
    with c.isolated_home("usage-sampling") as tmp:
        on = Service(load_settings(usage_period=5.0))  # the default, said out loud
        off = Service(load_settings(usage_period=0))
        try:
            runs = [pair(on, off, tmp) for _ in range(REPETITIONS)]
        finally:
            on.close()
            off.close()

    cost = c.median([r["on"] - r["off"] for r in runs])
    print(
        f"O1 supervisor CPU with sampling on (period 5 s): median {c.median([r['on'] for r in runs]):.3f}% "
        f"of one core (baseline: sampling off {c.median([r['off'] for r in runs]):.3f}%; "
        f"+{cost:.3f} points) target <= +{O1_TARGET:.1f}: {c.verdict(cost, O1_TARGET)}"
    )
    rss_on, rss_off = c.median([r["rss_on"] for r in runs]), c.median([r["rss_off"] for r in runs])
    print(
        f"   M3 with sampling on: supervisor peak RSS {c.mb(rss_on)} (sampling off {c.mb(rss_off)}; "
        f"+{c.mb(rss_on - rss_off)}) target <= {c.mb(M3_TARGET)}: {c.verdict(rss_on, M3_TARGET)}"
    )
    print(f"   informative: samples recorded in {WINDOW_S:.0f} s: {[int(r['samples']) for r in runs]}")


if __name__ == "__main__":
    c.main_guard(main)
