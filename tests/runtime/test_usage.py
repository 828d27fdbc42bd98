"""The supervisor's resource sampler: CPU of a process tree whose processes come and go, GPU
figures through NVML's Python API, and where the period comes from."""

from __future__ import annotations

import subprocess
import sys
import time
import types
from typing import Any

import pytest

from workbench.runtime import usage

#: Burns about 0.3 s of CPU in each of three short children it waits for, then sleeps.
PARENT = """
import subprocess, sys, time
for _ in range(3):
    subprocess.run([sys.executable, "-c",
        "import time\\nt = time.process_time()\\nwhile time.process_time() - t < 0.3: pass"])
time.sleep(30)
"""
BURNER = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass"
#: The sampled tree's root, as the supervisor is: it starts PARENT and BURNER (argv), says their
#: pids, reaps BURNER when it ends; on "kill" it kills PARENT and says "killed"; it exits at EOF.
#: Not the test's own process: that one may have children of its own (a session's server under
#: pytest-xdist) that would be sampled too.
ROOT = """
import subprocess, sys
parent = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
burner = subprocess.Popen([sys.executable, "-c", sys.argv[2]])
print(parent.pid, burner.pid, flush=True)
burner.wait()
sys.stdin.readline()
parent.kill()
parent.wait()
print("killed", flush=True)
sys.stdin.read()
"""


def test_cpu_seconds_count_processes_that_ended() -> None:
    started = time.time()
    root = subprocess.Popen(
        [sys.executable, "-c", ROOT, PARENT, BURNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert root.stdin is not None and root.stdout is not None
    try:
        parent, burner = (int(pid) for pid in root.stdout.readline().split())
        tree = usage.Tree(root.pid, started, usage.Gpus(""))
        samples = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            sample = tree.read()
            assert sample is not None
            samples.append(sample)
            # the burner ended and was reaped by the root (its CPU folds into no process of the tree)
            ended = _children_of(root.pid) == [parent] and _children_of(parent) == []
            if ended and sample["cpu_seconds"] >= 0.7 * (0.9 + 0.5):  # the short children ran too
                break
            time.sleep(0.1)
        root.stdin.write("kill\n")
        root.stdin.flush()
        assert root.stdout.readline() == "killed\n"
        assert burner not in _children_of(root.pid)
        cpu = [s["cpu_seconds"] for s in samples]
        assert cpu == sorted(cpu)  # never backwards, though processes ended
        assert cpu[-1] >= 0.7 * (0.9 + 0.5), cpu  # the children's CPU, and the reaped burner's
        assert all(s["rss_bytes"] > 0 and s["threads"] >= 1 and s["gpu_util"] is None for s in samples)
        assert max(s["cpu_percent"] for s in samples) > 0
        assert tree.read() is None  # nothing of the tree is left (its root alone is not sampled)
    finally:
        root.kill()
        root.wait()


def _children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


class _Handle:
    def __init__(self, util: int, used: int) -> None:
        self.util, self.used = util, used


def _fake_nvml(calls: list[str]) -> types.ModuleType:
    """NVML's Python API (nvidia-ml-py's ``pynvml``) as far as the sampler uses it."""
    devices = {0: _Handle(30, 2 * 2**30), 1: _Handle(50, 3 * 2**30)}
    module = types.ModuleType("pynvml")
    module.nvmlInit = lambda: calls.append("init")  # type: ignore[attr-defined]
    module.nvmlShutdown = lambda: calls.append("shutdown")  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByIndex = lambda i: devices[i]  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByUUID = lambda u: devices[int(u[-1])]  # type: ignore[attr-defined]
    module.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=h.util)  # type: ignore[attr-defined]
    module.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=h.used)  # type: ignore[attr-defined]
    return module


def test_gpu_figures_of_the_granted_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(calls))
    gpus = usage.Gpus("0, GPU-1")
    assert gpus.read() == (80.0, 5 * 2**30)  # summed: 100 = one GPU busy
    gpus.close()
    assert calls == ["init", "shutdown"]
    assert usage.Gpus("").read() == (None, None)  # none granted: NVML is not even started
    assert calls == ["init", "shutdown"]
    assert usage.Gpus("7").read() == (None, None)  # a device NVML does not have


def test_no_nvml_means_no_gpu_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed
    assert usage.Gpus("0").read() == (None, None)


@pytest.mark.parametrize(
    ("launch", "env", "expected"),
    [
        ({}, {}, (5.0, 3600.0)),
        ({}, {"WORKBENCH_USAGE_PERIOD": "0.5", "WORKBENCH_USAGE_HISTORY": "2h"}, (0.5, 7200.0)),
        ({}, {"WORKBENCH_USAGE_PERIOD": "0"}, (0.0, 3600.0)),
        ({}, {"WORKBENCH_USAGE_PERIOD": "soon"}, (5.0, 3600.0)),
        ({"usage_period": 2.0, "usage_history": 60.0}, {"WORKBENCH_USAGE_PERIOD": "0.5"}, (2.0, 60.0)),
        ({"usage_period": 0}, {}, (0.0, 3600.0)),
    ],
)
def test_the_period_from_the_launch_else_the_environment(
    monkeypatch: pytest.MonkeyPatch,
    launch: dict[str, Any],
    env: dict[str, str],
    expected: tuple[float, float],
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert usage.timing(launch) == expected
