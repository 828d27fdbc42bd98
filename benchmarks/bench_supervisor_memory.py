"""M3: resident memory of the supervisor that watches one local workload, and of its guard.

A supervisor runs under a small guard (the process that stops every process of the workload
if the supervisor dies), its parent; both are measured, and their sum is reported next to
the supervisor alone. A pod that sleeps is launched through ``workbench.service.Service``
(local backend); once its record is ``running`` with a ``supervisor_pid``, each process's
VmRSS (``/proc/PID/status``) is sampled for a while and the highest reading taken, and the
pair's proportional set size (``Pss`` in ``/proc/PID/smaps_rollup``: pages shared by the two,
or with the launcher they were forked from, counted once) is read at the end; the
workload is cancelled and deleted afterwards. Side by side, the same sampling of a bare
interpreter (``python -c "import time; time.sleep(...)"``) shows the floor any Python
process pays.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import _common as c

from workbench.service import Service
from workbench.store import ACTIVE, RUNNING

REPETITIONS = 3
SLEEP_S = 3.0
SAMPLES = 8
SAMPLE_EVERY = 0.1  # seconds; 8 samples fit well inside the sleep
M3_TARGET = 20 * 2**20  # bytes (BENCHMARKS.md)


def sample_rss(pid: int) -> int:
    """The highest VmRSS over the sampling window; 0 readings mean the process is gone."""
    readings = []
    for _ in range(SAMPLES):
        rss = c.rss_bytes(pid)
        if rss is None:
            break
        readings.append(rss)
        time.sleep(SAMPLE_EVERY)
    if not readings:
        raise c.BenchError(f"process {pid} ended before its memory could be read")
    return max(readings)


def pss_bytes(pid: int) -> int:
    """The process's proportional set size (its share of every page it maps)."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    raise c.BenchError(f"no Pss for process {pid}")


def parent_pid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise c.BenchError(f"no parent recorded for process {pid}")


def supervisor_rss(service: Service, cwd: Path) -> tuple[int, int, int | None, int]:
    """One pod: the supervisor's RSS, its guard's, (for context) its workload process's, and the
    supervisor's and guard's PSS together."""
    workload = service.launch({"kind": "pod", "code": f"import time\ntime.sleep({SLEEP_S})\n"}, cwd=str(cwd))
    try:
        deadline = time.monotonic() + 30
        while True:
            record = service.get(workload.id)
            if record.status == RUNNING and record.supervisor_pid:
                break
            if record.status not in ACTIVE:
                raise c.BenchError(f"{record.id} ended before running: {record.status} {record.message}")
            if time.monotonic() > deadline:
                raise c.BenchError(f"{record.id} still {record.status} after 30 s")
            time.sleep(0.01)
        rss = sample_rss(record.supervisor_pid)
        guard_pid = parent_pid(record.supervisor_pid)
        guard = sample_rss(guard_pid)
        child = c.rss_bytes(record.pid) if record.pid else None
        pss = pss_bytes(record.supervisor_pid) + pss_bytes(guard_pid)
        if service.get(workload.id).status != RUNNING:
            raise c.BenchError(f"{workload.id} stopped while being measured")
    finally:
        service.cancel(workload.id)
        service.delete(workload.id, force=True)
    return rss, guard, child, pss


def bare_interpreter_rss() -> int:
    proc = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({SLEEP_S})"])
    try:
        time.sleep(0.3)  # past interpreter start-up, like the supervisor once it is running
        return sample_rss(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    with c.isolated_home("supervisor-memory") as tmp:
        service = Service()  # reads the isolated WORKBENCH_HOME set just above
        try:
            runs = [supervisor_rss(service, tmp) for _ in range(REPETITIONS)]
            bare = [bare_interpreter_rss() for _ in range(REPETITIONS)]
        finally:
            service.close()

    sup = c.median([rss for rss, _, _, _ in runs])
    both = c.median([rss + guard for rss, guard, _, _ in runs])
    pss = c.median([pss for _, _, _, pss in runs])
    base = c.median(bare)
    print(
        f"M3 supervisor RSS: median {c.mb(sup)} (baseline: bare python interpreter {c.mb(base)}; "
        f"+{c.mb(sup - base)}, ratio {sup / base:.2f}x) target <= {c.mb(M3_TARGET)}: "
        f"{c.verdict(sup, M3_TARGET)}"
    )
    print(
        f"M3 supervisor + guard PSS: median {c.mb(pss)} (their summed RSS {c.mb(both)}, guard "
        f"{c.mb(both - sup)}, counts the pages they share with each other and with the launcher "
        f"twice) target <= {c.mb(M3_TARGET)}: {c.verdict(pss, M3_TARGET)}"
    )
    children = [child for _, _, child, _ in runs if child]
    if children:
        child = c.mb(c.median(children))
        print(f"   informative: the workload's own process (workbench.runtime.cell) {child}")


if __name__ == "__main__":
    c.main_guard(main)
