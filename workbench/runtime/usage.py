"""Resource samples of a local workload, taken in a thread of its supervisor.

Every ``usage_period`` seconds (the first time within a second of the start) the sampler reads
the workload's whole process tree with psutil: everything below the supervisor, which is a
child subreaper, so processes that start sessions of their own or double-fork stay in it,
and anything else in the workload's cgroup, where it has one.
A sample holds the tree's CPU seconds and its CPU % over the last period (100 = one core),
its resident memory (the sum of the processes' RSS) and threads, and, where GPUs were granted
and nvidia-ml-py is installed, the granted GPUs' utilisation (summed: 100 = one GPU busy) and
memory in use; otherwise those two are None. Each sample goes to the store
(:meth:`~workbench.store.Store.record_usage`), which keeps a bounded history and a summary.

CPU seconds count processes that ended too: a process that is gone had its time folded into
its parent's ``children_*`` times when the parent (in the tree) waited for it; one the
supervisor reaped is carried on with its last reading.

Sampling never delays or breaks supervision: it runs in a daemon thread, psutil is imported
there (the supervisor stays small), and a failure (a store error, say) is logged once to the
supervisor's log while sampling goes on.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from ..store import Store
from . import cgroup

PERIOD_ENV = "WORKBENCH_USAGE_PERIOD"
HISTORY_ENV = "WORKBENCH_USAGE_HISTORY"
DEFAULT_PERIOD = 5.0
DEFAULT_HISTORY = 3600.0
#: Seconds after the start by which the first sample is taken (sooner when the period is shorter).
FIRST_SAMPLE = 1.0
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def _seconds(text: str | None, default: float) -> float:
    """``5``, ``0.5``, ``30s``, ``5m`` or ``1h`` in seconds; ``default`` when unset or unreadable."""
    text = (text or "").strip().lower()
    scale = _UNITS.get(text[-1:], 1.0) if text else 1.0
    try:
        value = float(text.rstrip("smh")) * scale
    except ValueError:
        return default
    return value if value >= 0 else default


def timing(launch: Mapping[str, Any]) -> tuple[float, float]:
    """(period, seconds of history kept): from ``launch.json`` (the backend's settings), else the
    ``WORKBENCH_USAGE_*`` environment the supervisor was started with, else the defaults."""
    period = launch.get("usage_period")
    keep = launch.get("usage_history")
    if not isinstance(period, (int, float)):
        period = _seconds(os.environ.get(PERIOD_ENV), DEFAULT_PERIOD)
    if not isinstance(keep, (int, float)) or keep <= 0:
        keep = _seconds(os.environ.get(HISTORY_ENV), DEFAULT_HISTORY) or DEFAULT_HISTORY
    return max(0.0, float(period)), float(keep)


class Gpus:
    """Utilisation and memory of the granted GPUs through NVML; nothing without nvidia-ml-py."""

    def __init__(self, visible: str) -> None:
        self._nvml: Any = None
        self._handles: list[Any] = []
        devices = [d.strip() for d in visible.split(",") if d.strip()]
        if not devices:
            return
        try:
            import pynvml
        except ImportError:
            return
        try:
            pynvml.nvmlInit()
        except Exception:  # no driver, no device: no GPU figures
            return
        self._nvml = pynvml
        try:
            for device in devices:
                if device.startswith(("GPU-", "MIG-")):
                    self._handles.append(pynvml.nvmlDeviceGetHandleByUUID(device))
                else:
                    self._handles.append(pynvml.nvmlDeviceGetHandleByIndex(int(device)))
        except Exception:
            self._handles = []

    def read(self) -> tuple[float | None, int | None]:
        """(utilisation %, summed; memory used, bytes) of the granted GPUs; (None, None) without."""
        if not self._handles:
            return None, None
        nvml = self._nvml
        try:
            util = sum(float(nvml.nvmlDeviceGetUtilizationRates(h).gpu) for h in self._handles)
            memory = sum(int(nvml.nvmlDeviceGetMemoryInfo(h).used) for h in self._handles)
        except Exception:  # MIG slices report no utilisation, a device may fall off the bus
            return None, None
        return util, memory

    def close(self) -> None:
        if self._nvml is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
            self._nvml = None


class Tree:
    """Reads the process tree below ``root`` (the supervisor): one sample per :meth:`read`."""

    def __init__(self, root: int, started: float, gpus: Gpus, group: str | None = None) -> None:
        import psutil  # here, in the sampling thread: the supervisor does not pay for it otherwise

        self._psutil = psutil
        self._root = psutil.Process(root)
        self._group = group
        self._gpus = gpus
        self._seen: dict[tuple[int, float], tuple[float, int]] = {}  # (pid, start) → (cpu, ppid)
        self._carried = 0.0  # CPU seconds of ended processes no parent in the tree accounts for
        self._last = (started, 0.0)  # (time, CPU seconds) of the previous sample

    def read(self) -> dict[str, Any] | None:
        """One sample; None when no process of the workload is left to read."""
        psutil = self._psutil
        now = time.time()
        try:
            processes = self._root.children(recursive=True)
        except psutil.Error:
            return None
        if self._group:  # below the supervisor already, unless it could not become a subreaper
            known = {process.pid for process in processes}
            for pid in cgroup.members(self._group):
                if pid not in known:
                    try:
                        processes.append(psutil.Process(pid))
                    except psutil.Error:
                        continue
        live: dict[tuple[int, float], tuple[float, int]] = {}
        rss = threads = 0
        for process in processes:
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    key = (process.pid, process.create_time())
                    ppid = process.ppid()
                    memory = process.memory_info().rss
                    count = process.num_threads()
            except psutil.Error:  # ended meanwhile, or not ours to read
                continue
            live[key] = (times.user + times.system + times.children_user + times.children_system, ppid)
            rss += memory
            threads += count
        if not live:
            return None
        pids = {pid for pid, _ in live}
        for key, (cpu, ppid) in self._seen.items():
            if key not in live and ppid not in pids:
                self._carried += cpu
        self._seen = live
        cpu_seconds = max(self._last[1], self._carried + sum(cpu for cpu, _ in live.values()))
        elapsed = now - self._last[0]
        percent = 100.0 * (cpu_seconds - self._last[1]) / elapsed if elapsed > 0 else 0.0
        self._last = (now, cpu_seconds)
        gpu_util, gpu_memory = self._gpus.read()
        return {
            "t": now,
            "cpu_seconds": round(cpu_seconds, 3),
            "cpu_percent": round(percent, 2),
            "rss_bytes": rss,
            "threads": threads,
            "gpu_util": gpu_util,
            "gpu_memory_bytes": gpu_memory,
        }


class Sampler:
    """Samples one workload in a daemon thread until :meth:`stop`.

    Args:
        store: the shared store (the thread gets a connection of its own).
        workload_id: the workload.
        period: seconds between samples (more than 0).
        keep: seconds of samples kept in the store.
        started: when the workload's first process started (``time.time()``).
        gpus: the workload's ``CUDA_VISIBLE_DEVICES`` when GPUs were granted, else empty.
        group: the workload's cgroup folder, where it has one.
    """

    def __init__(
        self,
        store: Store,
        workload_id: str,
        *,
        period: float,
        keep: float,
        started: float,
        gpus: str = "",
        group: str | None = None,
    ) -> None:
        self.store = store
        self.group = group
        self.id = workload_id
        self.period = period
        self.keep = keep
        self.started = started
        self.gpus = gpus
        self.recorded = 0
        self._told = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="workbench-usage", daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self, timeout: float = 0.5) -> None:
        """Ask the thread to end; waits at most ``timeout`` (a store write may be under way)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _say(self, what: str, exc: BaseException) -> None:
        if not self._told:
            self._told = True
            detail = " ".join(str(exc).split()) or type(exc).__name__
            print(f"workbench supervisor: {what} ({detail}); later failures are not logged", file=sys.stderr)

    def _run(self) -> None:
        wait = min(FIRST_SAMPLE, self.period)
        # nothing is imported before the first sample is due: a workload's start (and one that
        # ends sooner) does not share the CPU with psutil's import
        if self._stop.wait(wait):
            return
        gpus = Gpus(self.gpus)
        try:
            tree = Tree(os.getpid(), self.started, gpus, self.group)
        except Exception as exc:  # psutil missing or broken: the workload runs unsampled
            gpus.close()
            self._say("resource sampling is off", exc)
            return
        self._once(tree)
        try:
            while not self._stop.wait(wait):
                began = time.monotonic()
                self._once(tree)
                wait = max(0.0, self.period - (time.monotonic() - began))
        finally:
            gpus.close()

    def _once(self, tree: Tree) -> None:
        try:
            sample = tree.read()
        except Exception as exc:
            self._say("could not read the workload's resource usage", exc)
            return
        if sample is None or self._stop.is_set():
            return
        try:
            self.store.record_usage(self.id, sample, keep=self.keep)
            self.recorded += 1
        except Exception as exc:  # the store's error or sqlite's: sampling goes on
            self._say("could not record a resource sample", exc)


def start(
    store: Store,
    workload_id: str,
    launch: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    granted: bool,
    group: str | None,
) -> Sampler | None:
    """Start sampling a workload that has just started; None when the period is 0 (off).

    Args:
        launch: its ``launch.json`` (``usage_period`` and ``usage_history``, when there).
        env: its environment (``CUDA_VISIBLE_DEVICES``).
        granted: whether GPUs were granted to it (only then is NVML asked).
        group: its cgroup folder, where it has one.
    """
    period, keep = timing(launch)
    if period <= 0:
        return None
    visible = env.get("CUDA_VISIBLE_DEVICES", "") if granted else ""
    sampler = Sampler(
        store, workload_id, period=period, keep=keep, started=time.time(), gpus=visible, group=group
    )
    try:
        return sampler.start()
    except RuntimeError as exc:  # no thread to be had: the workload runs unsampled
        sampler._say("resource sampling is off", exc)
        return None
