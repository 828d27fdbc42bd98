"""The magics in a real kernel: %load_ext, %%pod, %wb, interrupts and kernel restarts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from workbench.service import Service

from .kernel import Kernel


@pytest.fixture
def kernel(wb_home: object) -> Iterator[Kernel]:
    k = Kernel()
    reply = k.run("%load_ext workbench")
    assert reply.error is None, reply
    yield k
    k.stop()


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_load_ext_imports_no_heavy_module(wb_home: object) -> None:
    k = Kernel()
    try:
        reply = k.run(
            "%load_ext workbench\n"
            "import sys\n"
            "heavy = ['kubernetes', 'torch', 'dask', 'distributed', 'papermill', 'jsonschema', 'pydantic']\n"
            "print(sorted(m for m in heavy if m in sys.modules))\n"
        )
        assert reply.error is None, reply
        assert reply.stdout.strip() == "[]"
    finally:
        k.stop()


def test_pod_send_get_round_trip(kernel: Kernel) -> None:
    assert kernel.run("x = 21").error is None
    reply = kernel.run("%%pod --send x --get y\ny = x * 2\nprint('computed', y)")
    assert reply.error is None, reply
    assert reply.stdout == "computed 42\n"
    check = kernel.run("print(y, type(y).__name__)")
    assert check.stdout == "42 int\n"


def test_pod_without_get_injects_nothing(kernel: Kernel) -> None:
    # a workload that writes a results file of its own: nothing reaches the namespace
    reply = kernel.run(
        "%%pod\nimport os, pickle\n"
        "for name in ('results.pkl', 'results.sealed'):\n"
        "    with open(os.path.join(os.environ['WORKBENCH_RUN_DIR'], name), 'wb') as fh:\n"
        "        pickle.dump({'injected': 1}, fh)\n"
    )
    assert reply.error is None, reply
    check = kernel.run("print('injected' in dir())")
    assert check.stdout == "False\n"


def test_failed_cell_shows_one_clear_line(kernel: Kernel) -> None:
    reply = kernel.run("%%pod\nprint('partial')\nraise ValueError('bad shape')")
    assert "partial" in reply.stdout
    assert "ValueError: bad shape" in reply.stdout  # the workload's own traceback, streamed
    assert reply.error is not None
    assert len(reply.error["traceback"]) == 1
    line = reply.error["traceback"][0]
    assert "failed: exited with code 1: ValueError: bad shape" in line
    assert "workbench/" not in line and "Traceback" not in line


def test_bad_flag_is_one_line_and_creates_nothing(kernel: Kernel) -> None:
    reply = kernel.run("%%pod --gpus -1\nprint('never')")
    assert reply.error is not None
    assert reply.error["traceback"] == [
        "\x1b[31mworkbench: invalid --gpus (resources.gpus): -1 is negative; ask for 0 or more GPUs"
        " — see `workbench schema pod` for every field\x1b[0m"
    ]
    assert reply.stdout == ""
    assert Service().store.list() == []


def test_send_of_undefined_variable(kernel: Kernel) -> None:
    reply = kernel.run("%%pod --send nothing_here\npass")
    assert reply.error is not None
    assert "--send nothing_here: no such variable in the kernel" in reply.error_text
    assert Service().store.list() == []


def test_interrupt_cancels_the_workload(kernel: Kernel) -> None:
    msg_id = kernel.submit(
        "%%pod --name sleeper\nimport time\nprint('sleeping', flush=True)\ntime.sleep(300)"
    )
    service = Service()
    deadline = time.monotonic() + 30
    while True:
        try:
            if "sleeping" in "".join(service.logs("sleeper")):
                break
        except Exception:
            pass
        assert time.monotonic() < deadline
        time.sleep(0.05)
    kernel.interrupt()
    reply = kernel.collect(msg_id)
    assert reply.error is not None
    assert "interrupted; sleeper cancelled" in reply.error_text
    assert service.get("sleeper").status == "cancelled"


def test_workload_survives_kernel_restart(kernel: Kernel, tmp_path: Path) -> None:
    gate = tmp_path / "release"  # the workload waits for it: running until the test says so
    reply = kernel.run(
        "%%pod --name survivor --detach\n"
        "import os, time\nprint('first', flush=True)\n"
        f"while not os.path.exists({str(gate)!r}):\n    time.sleep(0.02)\nprint('second')"
    )
    assert reply.error is None, reply
    assert "survivor launched" in reply.stdout
    service = Service()
    wait_until(lambda: "first" in "".join(service.logs("survivor")))
    assert service.get("survivor").status == "running"
    kernel.restart()
    assert kernel.run("%load_ext workbench").error is None
    listing = kernel.run("%wb ls")
    assert "survivor" in listing.stdout
    assert service.get("survivor").status == "running"  # it was running across the restart
    gate.touch()
    service.wait("survivor", timeout=60)
    logs = kernel.run("%wb logs survivor")
    assert logs.stdout == "first\nsecond\n"
    described = kernel.run("%wb describe survivor")
    assert "status: succeeded" in described.stdout
    session_line = next(line for line in described.stdout.splitlines() if line.startswith("session:"))
    assert len(session_line.split(":", 1)[1].strip()) >= 8  # tagged with the launching kernel


def test_wb_logs_follow_prints_each_line_once(kernel: Kernel) -> None:
    code = "import time\nfor i in range(3):\n    print('line', i, flush=True)\n    time.sleep(0.2)"
    assert kernel.run(f"%%pod --name ticker --detach\n{code}").error is None
    followed = kernel.run("%wb logs ticker -f")  # follows while it runs, to its end
    assert followed.error is None, followed
    assert followed.stdout == "line 0\nline 1\nline 2\n"
    assert "status: succeeded" in kernel.run("%wb describe ticker").stdout


def test_wb_unknown_command(kernel: Kernel) -> None:
    reply = kernel.run("%wb frobnicate x")
    assert reply.error is not None
    assert "unknown %wb command 'frobnicate'" in reply.error_text


def test_dask_magic_reconnects_after_restart(kernel: Kernel) -> None:
    reply = kernel.run("client = %dask --workers 2 --name kd\nprint(client.submit(sum, [1, 2, 3]).result())")
    assert reply.error is None, reply
    first, result = reply.stdout.strip().splitlines()
    assert first.startswith("Dask cluster kd started on local: 2 workers, scheduler tcp://127.0.0.1:")
    assert first.endswith("(closed when the kernel shuts down)")
    assert result == "6"
    address = Service().get("kd").info["address"]
    kernel.restart()
    assert kernel.run("%load_ext workbench").error is None
    again = kernel.run("client = %dask --name kd\nprint(client.scheduler.address)")
    assert again.error is None, again
    assert again.stdout.splitlines()[0].startswith("Dask cluster kd connected to on local")
    assert again.stdout.splitlines()[1] == address
    scaled = kernel.run("%wb scale kd 1")
    assert scaled.stdout.strip() == "kd scaling to 1 workers"
    Service().cancel("kd")


def test_kernel_shutdown_closes_its_clusters_but_keeps_keep_ones(wb_home: object) -> None:
    k = Kernel()
    assert k.run("%load_ext workbench").error is None
    reply = k.run("a = %dask --workers 1 --name scoped\nb = %dask --workers 1 --name kept --keep")
    assert reply.error is None, reply
    service = Service()
    assert {w.id: w.status for w in service.list()} == {"scoped": "running", "kept": "running"}
    k.kc.stop_channels()
    k.km.shutdown_kernel(now=False)  # a shutdown request with restart=false, as JupyterLab sends
    assert service.get("scoped").status == "cancelled"
    assert service.get("kept").status == "running"
    service.cancel("kept")


def test_dask_magic_bad_input(kernel: Kernel) -> None:
    reply = kernel.run("%dask --workers 0")
    assert reply.error is not None
    assert "invalid --workers (workers): 0 must be greater than or equal to 1" in reply.error_text
    assert Service().store.list() == []
