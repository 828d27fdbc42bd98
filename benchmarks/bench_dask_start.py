"""B4: `%dask --workers 2` to a usable client, against `LocalCluster(n_workers=2)` in process.

Both run in the same kernel, alternating, five times each; "usable" means a first task
(`client.submit(sum, [1, 2]).result()`) came back. Each cluster is closed before the next.
`%dask` starts its scheduler and nanny workers as a supervised, detached workload (so the
cluster outlives the kernel); the baseline keeps the scheduler inside the kernel.
"""

from __future__ import annotations

import _common

RUNS = 5
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


def main() -> None:
    with _common.isolated_home("b4") as tmp:
        kernel = _common.BenchKernel(tmp)
        try:
            kernel.run("%load_ext workbench\nimport distributed, dask")  # imports are paid once by both
            kernel.measure(OURS, timeout=120)  # warm-up (first use imports pydantic, the store…)
            kernel.measure(BASELINE, timeout=120)
            ours, base = [], []
            for _ in range(RUNS):
                ours.append(kernel.measure(OURS, timeout=120)["seconds"])
                base.append(kernel.measure(BASELINE, timeout=120)["seconds"])
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


if __name__ == "__main__":
    _common.main_guard(main)
