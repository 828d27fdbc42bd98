"""B4: `%dask --workers 2` to a usable client, against `LocalCluster(n_workers=2)` in process.

Both run in the same kernel, nine times each, taking turns at going first; "usable" means a first task
(`client.submit(sum, [1, 2]).result()`) came back. Each cluster is closed before the next.
`%dask` starts its scheduler and nanny workers as a supervised, detached workload (so the
cluster outlives the kernel); the baseline keeps the scheduler inside the kernel.
"""

from __future__ import annotations

import _common

RUNS = 9
OURS = """
_t = _bench_time.perf_counter()
_c = get_ipython().run_line_magic('dask', '--workers 2 --threads 1 --name b4-run')
assert _c.submit(sum, [1, 2]).result() == 3
_dt = _bench_time.perf_counter() - _t
_c.close()
get_ipython().run_line_magic('wb', 'rm b4-run --force')
_bench_report(seconds=_dt)
"""
BASELINE = """
from distributed import Client, LocalCluster
_t = _bench_time.perf_counter()
_lc = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=':0')
_c = Client(_lc)
assert _c.submit(sum, [1, 2]).result() == 3
_dt = _bench_time.perf_counter() - _t
_c.close(); _lc.close()
_bench_report(seconds=_dt)
"""


# Wraps the magics' own Service instance (instance attributes shadow the methods) so each step
# of the real code path leaves a wall-clock mark; the package itself is untouched.
INSTRUMENT = """
_marks = {}
_svc = get_ipython().magics_manager.registry['WorkbenchMagics'].service

def _timed(obj, name):
    orig = getattr(obj, name)
    def wrapper(*args, **kwargs):
        _marks.setdefault(name + '0', _bench_time.time())
        try:
            return orig(*args, **kwargs)
        finally:
            _marks[name + '1'] = _bench_time.time()
    setattr(obj, name, wrapper)

for _name in ('dask_cluster', 'dask_address', 'dask_client'):
    _timed(_svc, _name)
# (text of a line in the cluster's log, mark): the last such line sets the mark
_LOG_MARKS = [('Scheduler at:', 'scheduler'), ('Register worker', 'registered')]
"""
BREAKDOWN = """
import datetime as _bench_dt, pathlib as _bench_path
_marks.clear()
_marks['cell0'] = _bench_time.time()
_c = get_ipython().run_line_magic('dask', '--workers 2 --threads 1 --name b4-run')
_marks['magic1'] = _bench_time.time()
assert _c.submit(sum, [1, 2]).result() == 3
_marks['task1'] = _bench_time.time()
_w = _svc.get('b4-run')
_c.close()
for _line in (_bench_path.Path(_w.run_dir) / 'logs' / 'output.log').read_text().splitlines():
    for _text, _key in _LOG_MARKS:  # distributed's own log lines, stamped to the millisecond
        if _text in _line:
            _marks[_key] = _bench_dt.datetime.strptime(_line[:23], '%Y-%m-%d %H:%M:%S,%f').timestamp()
get_ipython().run_line_magic('wb', 'rm b4-run --force')
_bench_report(started=_w.started, **_marks)
"""
# (label, from mark, to mark): consecutive, so the phases add up to the whole cell
PHASES = [
    ("parse, validate, launch", "cell0", "dask_cluster1"),
    ("supervisor starts the cluster process", "dask_cluster1", "started"),
    ("cluster process: imports, workers' server forked, scheduler listening", "started", "scheduler"),
    ("2 nanny workers forked and registered", "scheduler", "registered"),
    ("address recorded and seen by the kernel", "registered", "dask_address1"),
    ("Client connects", "dask_address1", "dask_client1"),
    ("rest of %dask (scheduler_info, widget)", "dask_client1", "magic1"),
    ("first task round trip", "magic1", "task1"),
]  # fmt: skip


def import_floor() -> float:
    """Seconds a fresh interpreter takes to import distributed (what the cluster process pays)."""
    import subprocess
    import sys
    import time

    times = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import distributed"], check=True)
        times.append(time.perf_counter() - start)
    return _common.median(times)


def main() -> None:
    with _common.isolated_home("b4") as tmp:
        kernel = _common.BenchKernel(tmp)
        try:
            kernel.run("%load_ext workbench\nimport distributed, dask")  # imports are paid once by both
            kernel.measure(OURS, timeout=120)  # warm-up (first use imports pydantic, the store…)
            kernel.measure(BASELINE, timeout=120)
            ours, base = [], []
            for i in range(RUNS):  # taking turns: what one run leaves winding down slows the next
                for code, into in [(OURS, ours), (BASELINE, base)][:: 1 if i % 2 else -1]:
                    into.append(kernel.measure(code, timeout=120)["seconds"])
            kernel.run(INSTRUMENT)
            breakdowns = [kernel.measure(BREAKDOWN, timeout=120) for _ in range(3)]
        finally:
            kernel.stop()
    mine, theirs = _common.median(ours), _common.median(base)
    ratio = mine / theirs
    print(
        f"B4 %dask --workers 2 to a usable client: median {_common.ms(mine)} "
        f"(baseline: LocalCluster(n_workers=2) in process {_common.ms(theirs)}); ratio {ratio:.2f}x "
        f"target <= 1.25x: {_common.verdict(ratio, 1.25)}"
    )
    print(f"   spread over {RUNS} runs: %dask {_common.ms(min(ours))}..{_common.ms(max(ours))}, "
          f"baseline {_common.ms(min(base))}..{_common.ms(max(base))}")  # fmt: skip
    total = _common.median([b["task1"] - b["cell0"] for b in breakdowns])
    print(
        f"   where the time goes (medians of {len(breakdowns)} instrumented runs, total {_common.ms(total)}):"
    )
    for label, start, end in PHASES:
        print(f"     {label} {_common.ms(_common.median([b[end] - b[start] for b in breakdowns]))}")
    print(f"   informative: a fresh interpreter imports distributed in {_common.ms(import_floor())}")


if __name__ == "__main__":
    _common.main_guard(main)
