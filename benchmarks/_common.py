"""Helpers the benchmark scripts share: an isolated WORKBENCH_HOME, a kernel driver, medians.

Not a benchmark itself (``make bench`` runs ``bench_*.py`` only). The scripts are run as
``python benchmarks/bench_x.py``, so this folder is on ``sys.path`` and ``import _common`` works.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import statistics
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MARK = "@@bench "  # a cell prints MARK + JSON; the driver reads the measurement back from it


class BenchError(Exception):
    """The thing measured failed: the script reports it and exits non-zero."""


def compile_package() -> None:
    """Write the package's bytecode (``__pycache__``), as ``pip install`` does.

    Measured as a user gets it: with ``PYTHONDONTWRITEBYTECODE`` set (as on these machines) and an
    editable checkout, every process would otherwise compile each module it imports from source
    (7 ms for ``workbench/magics.py`` alone), in the kernel, the supervisor and every workload.
    """
    import compileall

    import workbench

    compileall.compile_dir(Path(workbench.__file__).parent, quiet=2, workers=1)


@contextmanager
def isolated_home(label: str) -> Iterator[Path]:
    """A fresh WORKBENCH_HOME and an absent WORKBENCH_CONFIG; removed (and restored) on exit.

    Other ``WORKBENCH_*`` variables of the calling shell are dropped so they cannot skew a run.
    """
    compile_package()
    tmp = Path(tempfile.mkdtemp(prefix=f"wb-bench-{label}-"))
    saved = {key: value for key, value in os.environ.items() if key.startswith("WORKBENCH_")}
    for key in saved:
        del os.environ[key]
    os.environ["WORKBENCH_HOME"] = str(tmp / "home")
    os.environ["WORKBENCH_CONFIG"] = str(tmp / "absent-config.yaml")
    try:
        yield tmp
    finally:
        for key in [k for k in os.environ if k.startswith("WORKBENCH_")]:
            del os.environ[key]
        os.environ.update(saved)
        shutil.rmtree(tmp, ignore_errors=True)


def rss_bytes(pid: int | str = "self") -> int | None:
    """VmRSS of a process from ``/proc/PID/status``; None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


# Defined in the kernel by BenchKernel.start(): the same reading, from inside the kernel.
KERNEL_PRELUDE = """
import json as _bench_json
import time as _bench_time

def _bench_rss():
    with open('/proc/self/status') as fh:
        for line in fh:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) * 1024

def _bench_report(**values):
    print(MARK_REPR + _bench_json.dumps(values))
""".replace("MARK_REPR", repr(MARK))


class BenchKernel:
    """A python3 kernel started with jupyter_client; cells report numbers through ``MARK`` lines."""

    def __init__(self, cwd: Path) -> None:
        from jupyter_client.manager import KernelManager

        # the kernel's own stderr (e.g. ipykernel's "running over TCP" warning) goes to a log
        # that is quoted only when a cell fails
        self.log_path = Path(tempfile.mkstemp(prefix="kernel-", suffix=".log", dir=cwd)[1])
        self._log = self.log_path.open("wb")
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(env=dict(os.environ), cwd=str(cwd), stdout=self._log, stderr=self._log)
        self.kc = self.km.client()
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=60)
            self.run(KERNEL_PRELUDE)
        except BaseException:
            self.stop()
            raise

    def run(self, code: str, timeout: float = 60) -> str:
        """Execute a cell; its stdout. Raises BenchError when the cell fails or stalls."""
        msg_id = self.kc.execute(code)
        stdout, error = "", None
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=timeout)
            except queue.Empty:
                raise BenchError(
                    f"no kernel output for {timeout}s running {code[:60]!r}\n{self.log_tail()}"
                ) from None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream" and content["name"] == "stdout":
                stdout += content["text"]
            elif kind == "error":
                error = "\n".join(content["traceback"])
            elif kind == "status" and content["execution_state"] == "idle":
                break
        if error is not None:
            raise BenchError(f"cell failed: {code[:80]!r}\n{error}\n{self.log_tail()}")
        return stdout

    def measure(self, code: str, timeout: float = 60) -> dict[str, Any]:
        """Execute a cell that ends with ``_bench_report(...)``; the values it reported."""
        out = self.run(code, timeout)
        for line in reversed(out.splitlines()):
            if line.startswith(MARK):
                values: dict[str, Any] = json.loads(line[len(MARK) :])
                values["_stdout"] = out
                return values
        raise BenchError(f"the cell reported nothing; its output was {out!r}")

    def log_tail(self, limit: int = 2000) -> str:
        text = self.log_path.read_text(errors="replace")
        return f"kernel log ({self.log_path.name}):\n{text[-limit:]}" if text.strip() else ""

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)
        self._log.close()


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def mb(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.1f} MB"


def verdict(value: float, target: float) -> str:
    return "OK" if value <= target else "MISSED"


def main_guard(body: Callable[[], None]) -> None:
    """Run a benchmark; exit 1 with the reason if what it measures errors out."""
    try:
        body()
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        sys.exit(1)
    except Exception:
        traceback.print_exc()
        sys.exit(1)
