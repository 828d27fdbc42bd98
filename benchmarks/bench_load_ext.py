"""B1 and M1: what ``%load_ext workbench`` costs a running kernel, against a bare kernel.

Each repetition starts a fresh python3 kernel (jupyter_client) and, from inside it, times a
no-op line magic (``%precision`` with no argument, which only restores the default; called
once untimed first, so IPython's lazily imported magic modules are loaded) and then
``%load_ext workbench``, both through ``run_line_magic``. ``%load_ext`` is timed cold, so it
includes IPython's own first import of its extension magics: a conservative figure. The
kernel's VmRSS is read before and after each. As an informative extra, the same kernel then
runs its first ``%%pod`` cell (which loads pydantic, the store and the backend) and its RSS
is read again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import _common as c

REPETITIONS = 7
B1_TARGET = 0.010  # seconds (BENCHMARKS.md)
M1_TARGET = 5 * 2**20  # bytes (BENCHMARKS.md)

NOOP_CELL = """
get_ipython().run_line_magic('precision', '')
_r0 = _bench_rss()
_t0 = _bench_time.perf_counter()
get_ipython().run_line_magic('precision', '')
_dt = _bench_time.perf_counter() - _t0
_bench_report(seconds=_dt, rss_before=_r0, rss_after=_bench_rss())
"""

LOAD_CELL = """
import sys as _sys
_m0 = set(_sys.modules)
_r0 = _bench_rss()
_t0 = _bench_time.perf_counter()
get_ipython().run_line_magic('load_ext', 'workbench')
_dt = _bench_time.perf_counter() - _t0
_r1 = _bench_rss()
_bench_report(seconds=_dt, rss_before=_r0, rss_after=_r1, new_modules=sorted(set(_sys.modules) - _m0),
              registered='pod' in get_ipython().magics_manager.magics['cell'])
"""

POD_CELL = """
_t0 = _bench_time.perf_counter()
get_ipython().run_cell_magic('pod', '', 'print("pod ran")')
_dt = _bench_time.perf_counter() - _t0
_bench_report(seconds=_dt, rss_after=_bench_rss())
"""


def one_kernel(cwd: Path) -> dict[str, Any]:
    kernel = c.BenchKernel(cwd)
    try:
        noop = kernel.measure(NOOP_CELL)
        load = kernel.measure(LOAD_CELL)
        if not load["registered"]:
            raise c.BenchError("%load_ext workbench ran but %%pod is not registered")
        pod = kernel.measure(POD_CELL)
        if "pod ran" not in pod["_stdout"]:
            raise c.BenchError(f"the first %%pod did not print its output: {pod['_stdout']!r}")
    finally:
        kernel.stop()
    return {
        "noop_s": noop["seconds"],
        "load_s": load["seconds"],
        "noop_rss": noop["rss_after"] - noop["rss_before"],
        "load_rss": load["rss_after"] - load["rss_before"],
        "bare_rss": load["rss_before"],
        "pod_s": pod["seconds"],
        "pod_rss": pod["rss_after"] - load["rss_before"],
        "new_modules": load["new_modules"],
    }


def main() -> None:
    with c.isolated_home("load-ext") as tmp:
        runs = [one_kernel(tmp) for _ in range(REPETITIONS)]

    def med(key: str) -> float:
        return c.median([r[key] for r in runs])

    load_s, noop_s = med("load_s"), med("noop_s")
    extra_s = c.median([r["load_s"] - r["noop_s"] for r in runs])
    ratio = load_s / noop_s if noop_s > 0 else float("inf")
    print(
        f"B1 load_ext: median {c.ms(extra_s)} extra ({c.ms(load_s)} for %load_ext workbench; "
        f"baseline: bare kernel no-op line magic {c.ms(noop_s)}; ratio {ratio:.0f}x) "
        f"target <= {c.ms(B1_TARGET)}: {c.verdict(extra_s, B1_TARGET)}"
    )
    print(f"   modules %load_ext workbench imported: {', '.join(runs[0]['new_modules'])}")

    extra_rss = c.median([r["load_rss"] - r["noop_rss"] for r in runs])
    print(
        f"M1 load_ext: median {c.mb(extra_rss)} extra RSS ({c.mb(med('load_rss'))} across %load_ext; "
        f"baseline: no-op line magic {c.mb(med('noop_rss'))}; bare kernel {c.mb(med('bare_rss'))}, "
        f"ratio {(med('bare_rss') + extra_rss) / med('bare_rss'):.3f}x) "
        f"target <= {c.mb(M1_TARGET)}: {c.verdict(extra_rss, M1_TARGET)}"
    )
    pod_rss = med("pod_rss")
    print(
        f"   informative: after the first %%pod the kernel holds {c.mb(pod_rss)} more than the bare "
        f"kernel ({c.mb(med('bare_rss'))} -> {c.mb(med('bare_rss') + pod_rss)}, "
        f"{(med('bare_rss') + pod_rss) / med('bare_rss'):.2f}x); "
        f"that first %%pod cell took {c.ms(med('pod_s'))} (median of {REPETITIONS} fresh kernels)"
    )


if __name__ == "__main__":
    c.main_guard(main)
