"""B2: a local ``%%pod`` round trip against ``subprocess.run([sys.executable, "-c", code])``.

Everything is timed inside one running kernel, started once a first kernel's ``%%pod`` has
brought up the launcher and the agent (what a user's machine has after its first launch).
The pod cell is ``%%pod --send x --get y`` with ``y = x + 1; print(y)``: the kernel's ``x`` is
pickled and sent, the cell runs under its supervisor, its output streams back and ``y`` is
loaded into the kernel. The baseline runs the same code with ``subprocess.run``
(``capture_output``). The first ``%%pod`` is reported on its own; then both are run
``REPETITIONS`` times, interleaved and alternating which goes first. A kernel without the
service loaded launches through the agent (:mod:`workbench.agent_client`); one that has it
(after ``%wb``, say) launches itself, and is reported too.

B2c is that first ``%%pod`` as a user meets it: in each of ``FRESH_KERNELS`` fresh kernels,
``%load_ext workbench`` and then one ``%%pod``, against the same subprocess call run first in a
fresh kernel of its own. Its breakdown (what the kernel would load without the agent) comes
from as many more fresh kernels that take the same steps one at a time: pydantic, its plugin
scan, pydantic-settings, workbench's own modules, the service (settings, store, local
backend), then the ``%%pod``.

A second, instrumented series wraps the kernel's ``Service`` methods (in the kernel, not in
the package) and reads the record's created/started/ended times, to show where the time goes.
"""

from __future__ import annotations

import time
from typing import Any

import _common as c

REPETITIONS = 10
BREAKDOWN_REPETITIONS = 7
FRESH_KERNELS = 7
B2_TARGET = 0.040  # seconds over the baseline (BENCHMARKS.md)
B2C_TARGET = 0.150

SETUP_CELL = """
get_ipython().run_line_magic('load_ext', 'workbench')
import subprocess as _bench_sp
import sys as _bench_sys
x = 1
"""

POD_CELL = """
y = None
_t0 = _bench_time.perf_counter()
get_ipython().run_cell_magic('pod', '--send x --get y', 'y = x + 1\\nprint(y)')
_dt = _bench_time.perf_counter() - _t0
_bench_report(seconds=_dt, y=y)
"""

SUBPROCESS_CELL = """
_t0 = _bench_time.perf_counter()
_p = _bench_sp.run([_bench_sys.executable, '-c', 'x = 1\\ny = x + 1\\nprint(y)'], capture_output=True)
_dt = _bench_time.perf_counter() - _t0
_bench_report(seconds=_dt, out=_p.stdout.decode(), err=_p.stderr.decode(), rc=_p.returncode)
"""

# Wraps the magics' own Service instance (instance attributes shadow the methods) so each
# step of the real code path leaves a wall-clock mark; the package itself is untouched.
LOADED_POD_CELL = "get_ipython().magics_manager.registry['WorkbenchMagics'].service\n" + POD_CELL

INSTRUMENT_CELL = """
_marks = {}
_svc = get_ipython().magics_manager.registry['WorkbenchMagics'].service
_backend = _svc.backend('local')

def _timed(obj, name):
    orig = getattr(obj, name)
    def wrapper(*args, **kwargs):
        _marks[name + '0'] = _bench_time.time()
        try:
            return orig(*args, **kwargs)
        finally:
            _marks[name + '1'] = _bench_time.time()
    setattr(obj, name, wrapper)

for _name in ('launch', 'resolve', 'wait', 'results'):
    _timed(_svc, _name)
for _name in ('submit', '_start_supervisor'):
    _timed(_backend, _name)

def _wrap_logs(orig):
    def logs(name, **kwargs):
        _marks['workload'] = name
        for chunk in orig(name, **kwargs):
            _marks.setdefault('first_output', _bench_time.time())
            yield chunk
        _marks['logs_end'] = _bench_time.time()
    return logs
_svc.logs = _wrap_logs(_svc.logs)
"""

BREAKDOWN_CELL = """
_marks.clear()
y = None
_marks['cell0'] = _bench_time.time()
get_ipython().run_cell_magic('pod', '--send x --get y', 'y = x + 1\\nprint(y)')
_marks['cell1'] = _bench_time.time()
_w = _svc.get(_marks['workload'])
_bench_report(y=y, created=_w.created, started=_w.started, ended=_w.ended, **_marks)
"""

# the first %%pod of a fresh kernel, one step at a time (each step pays only for what is new)
FIRST_STEPS_CELL = """
_steps = [('start', _bench_time.perf_counter())]
import pydantic.main
_steps.append(('pydantic', _bench_time.perf_counter()))
from pydantic.plugin._loader import get_plugins as _plugins
list(_plugins())
_steps.append(('its plugin scan (entry points)', _bench_time.perf_counter()))
import pydantic_settings
_steps.append(('pydantic-settings', _bench_time.perf_counter()))
import workbench.options, workbench.service
_steps.append(('workbench modules (models built)', _bench_time.perf_counter()))
_svc = get_ipython().magics_manager.registry['WorkbenchMagics'].service
_svc.store, _svc.backend('local')
_steps.append(('service: settings, store, backend', _bench_time.perf_counter()))
y = None
get_ipython().run_cell_magic('pod', '--send x --get y', 'y = x + 1\\nprint(y)')
_steps.append(('the %%pod itself', _bench_time.perf_counter()))
_bench_report(y=y, steps=[(b[0], b[1] - a[1]) for a, b in zip(_steps, _steps[1:])])
"""

# (label, from mark, to mark): consecutive, so the phases add up to the whole cell
PHASES = [
    ("parse %%pod flags", "cell0", "launch0"),
    ("validate spec (resolve)", "resolve0", "resolve1"),
    ("stage + insert record", "submit0", "_start_supervisor0"),
    ("ask the launcher (it forks the guard)", "_start_supervisor0", "_start_supervisor1"),
    ("rest of launch", "_start_supervisor1", "launch1"),
    ("guard, supervisor, code process forked and in its cgroup", "launch1", "started"),
    ("code runs, exit recorded", "started", "ended"),
    ("kernel notices the end (log poll)", "ended", "logs_end"),
    ("wait + check + load --get", "logs_end", "cell1"),
]


def check_pod(values: dict[str, Any]) -> None:
    if values["y"] != 2 or "2\n" not in values["_stdout"]:
        raise c.BenchError(f"%%pod round trip gave y={values['y']!r}, output {values['_stdout']!r}")


def check_subprocess(values: dict[str, Any]) -> None:
    if values["rc"] != 0 or values["out"] != "2\n":
        raise c.BenchError(f"baseline subprocess failed: rc={values['rc']}, {values['err']!r}")


def first_in_fresh_kernels(tmp: Any) -> tuple[list[float], list[float]]:
    """B2c: the first ``%%pod`` and the first subprocess call, each in fresh kernels, alternating."""
    pod_s, base_s = [], []
    for i in range(2 * FRESH_KERNELS):
        kernel = c.BenchKernel(tmp)
        try:
            kernel.run(SETUP_CELL)
            values = kernel.measure(POD_CELL if i % 2 == 0 else SUBPROCESS_CELL)
        finally:
            kernel.stop()
        if i % 2 == 0:
            check_pod(values)
            pod_s.append(values["seconds"])
        else:
            check_subprocess(values)
            base_s.append(values["seconds"])
    return pod_s, base_s


def first_steps(tmp: Any) -> list[list[tuple[str, float]]]:
    """B2c's breakdown: in ``FRESH_KERNELS`` fresh kernels, the first ``%%pod``'s steps timed apart."""
    runs = []
    for _ in range(FRESH_KERNELS):
        kernel = c.BenchKernel(tmp)
        try:
            kernel.run(SETUP_CELL)
            values = kernel.measure(FIRST_STEPS_CELL)
        finally:
            kernel.stop()
        if values["y"] != 2:
            raise c.BenchError(f"the stepped first %%pod gave y={values['y']!r}")
        runs.append(values["steps"])
    return runs


def warm_helpers(tmp: Any) -> None:
    """What a user's machine has after its first ``%%pod``: the launcher and the agent, up."""
    from workbench import agent_client

    kernel = c.BenchKernel(tmp)
    try:
        kernel.run(SETUP_CELL)
        check_pod(kernel.measure(POD_CELL))
    finally:
        kernel.stop()
    path = agent_client.socket_path(fresh=True)
    deadline = time.monotonic() + 60
    while path is not None and not path.exists():
        if time.monotonic() > deadline:
            raise c.BenchError(f"the agent did not come up at {path}")
        time.sleep(0.05)


def main() -> None:
    with c.isolated_home("pod-roundtrip") as tmp:
        warm_helpers(tmp)
        kernel = c.BenchKernel(tmp)
        try:
            kernel.run(SETUP_CELL)
            first = kernel.measure(POD_CELL)
            check_pod(first)
            check_subprocess(kernel.measure(SUBPROCESS_CELL))  # warm the baseline's page cache too
            pod_s, base_s = [], []
            for i in range(REPETITIONS):
                order = (POD_CELL, SUBPROCESS_CELL) if i % 2 == 0 else (SUBPROCESS_CELL, POD_CELL)
                for cell in order:
                    values = kernel.measure(cell)
                    if cell is POD_CELL:
                        check_pod(values)
                        pod_s.append(values["seconds"])
                    else:
                        check_subprocess(values)
                        base_s.append(values["seconds"])
            here_s = []  # once the kernel has the service loaded, it launches itself
            for _ in range(REPETITIONS):
                values = kernel.measure(LOADED_POD_CELL)
                check_pod(values)
                here_s.append(values["seconds"])
            kernel.run(INSTRUMENT_CELL)
            breakdowns = []
            for _ in range(BREAKDOWN_REPETITIONS):
                values = kernel.measure(BREAKDOWN_CELL)
                check_pod(values)
                breakdowns.append(values)
        finally:
            kernel.stop()
        fresh_pod_s, fresh_base_s = first_in_fresh_kernels(tmp)
        stepped = first_steps(tmp)

    pod, base = c.median(pod_s), c.median(base_s)
    extra = pod - base
    print(
        f"B2 %%pod round trip: median {c.ms(pod)} (baseline: subprocess.run python -c {c.ms(base)}); "
        f"+{c.ms(extra)}, ratio {pod / base:.1f}x; target <= +{c.ms(B2_TARGET)}: "
        f"{c.verdict(extra, B2_TARGET)}"
    )
    print(
        f"   spread over {REPETITIONS} runs: %%pod {c.ms(min(pod_s))}..{c.ms(max(pod_s))}, "
        f"baseline {c.ms(min(base_s))}..{c.ms(max(base_s))}"
    )
    first_s = c.ms(first["seconds"])
    print(f"   informative: first %%pod in the kernel (through the agent) {first_s}")
    print(
        f"   informative: in a kernel that has the service loaded (%wb, Service()), which launches"
        f" itself: median {c.ms(c.median(here_s))}, +{c.ms(c.median(here_s) - base)}"
    )
    fresh, fresh_base = c.median(fresh_pod_s), c.median(fresh_base_s)
    print(
        f"B2c first %%pod in a fresh kernel: median {c.ms(fresh)} of {FRESH_KERNELS} kernels "
        f"(baseline: the same subprocess call, first in a fresh kernel, {c.ms(fresh_base)}); "
        f"+{c.ms(fresh - fresh_base)}; target <= +{c.ms(B2C_TARGET)}: "
        f"{c.verdict(fresh - fresh_base, B2C_TARGET)}"
    )
    print(
        f"   where it goes without the agent (medians of {FRESH_KERNELS} more fresh kernels, step by step):"
    )
    for index, (label, _) in enumerate(stepped[0]):
        print(f"     {label} {c.ms(c.median([run[index][1] for run in stepped]))}")
    parts = []
    for label, start, end in PHASES:
        parts.append(f"{label} {c.ms(c.median([b[end] - b[start] for b in breakdowns]))}")
    total = c.median([b["cell1"] - b["cell0"] for b in breakdowns])
    print(
        f"   where the time goes in a kernel that launches itself (medians of {BREAKDOWN_REPETITIONS}"
        f" instrumented runs, total {c.ms(total)}):"
    )
    for part in parts:
        print(f"     {part}")


if __name__ == "__main__":
    c.main_guard(main)
