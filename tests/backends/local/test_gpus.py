"""The GPU allocator, with a faked device list (no GPU on these machines)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.backends.local.gpus import allocate, detect_gpus
from workbench.config import load_settings
from workbench.errors import Conflict, SpecError
from workbench.service import Service

from ...conftest import assert_nothing_created

HOLD = "import os, time\nprint(os.environ['CUDA_VISIBLE_DEVICES'], flush=True)\ntime.sleep(300)"


def test_allocate_takes_lowest_free_indices() -> None:
    assert allocate(2, ["0", "1", "2", "3"], {"0": "pod-a"}) == ["1", "2"]
    assert allocate(0, [], {}) == []


def test_allocate_refuses_more_than_the_host_has() -> None:
    with pytest.raises(SpecError) as info:
        allocate(3, ["0", "1"], {})
    assert str(info.value).startswith("asks for 3 GPUs but this host has 2")


def test_allocate_names_the_holders_when_busy() -> None:
    with pytest.raises(Conflict) as info:
        allocate(2, ["0", "1"], {"1": "pod-b"})
    assert "only 1 of 2 are free (held by pod-b)" in str(info.value)


def test_detect_on_a_machine_without_gpus() -> None:
    if Path("/dev/nvidia0").exists():  # a GPU machine: detection must find at least one
        assert detect_gpus()
    else:
        assert detect_gpus() == []


@pytest.fixture
def gpu_service(monkeypatch: pytest.MonkeyPatch, wb_home: Path) -> Service:
    monkeypatch.setenv("WORKBENCH_LOCAL_GPUS", "0,1,2,3")
    svc = Service(load_settings())
    yield svc  # type: ignore[misc]
    for w in svc.store.list(status=["pending", "running"]):
        svc.cancel(w.id)
    svc.close()


def _visible(service: Service, name: str) -> str:
    for chunk in service.logs(name, follow=False):
        if chunk.strip():
            return chunk.strip()
    raise AssertionError("no output yet")


def test_running_workloads_never_share_a_gpu(gpu_service: Service) -> None:
    a = gpu_service.launch({"kind": "pod", "code": HOLD, "resources": {"gpus": 2}})
    b = gpu_service.launch({"kind": "pod", "code": HOLD, "resources": {"gpus": 2}})
    assert a.gpus == ["0", "1"] and b.gpus == ["2", "3"]
    with pytest.raises(Conflict, match=r"only 0 of 4 are free"):
        gpu_service.launch({"kind": "pod", "code": HOLD, "resources": {"gpus": 1}})
    assert len(gpu_service.store.list()) == 2
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if _visible(gpu_service, a.id) and _visible(gpu_service, b.id):
                break
        except AssertionError:
            time.sleep(0.05)
    assert _visible(gpu_service, a.id) == "0,1"
    assert _visible(gpu_service, b.id) == "2,3"
    gpu_service.cancel(a.id)
    c = gpu_service.launch({"kind": "pod", "code": HOLD, "resources": {"gpus": 1}})
    assert c.gpus == ["0"]


def test_more_gpus_than_the_host_is_refused_before_launch(gpu_service: Service) -> None:
    with pytest.raises(SpecError, match="asks for 5 GPUs but this host has 4"):
        gpu_service.launch({"kind": "pod", "code": "pass", "resources": {"gpus": 5}})
    assert_nothing_created(gpu_service)


def test_two_processes_racing_for_one_gpu(wb_home: Path) -> None:
    env = {**os.environ, "WORKBENCH_LOCAL_GPUS": "0"}
    script = wb_home.parent / "hold.py"
    script.write_text("import time\ntime.sleep(300)\n")
    cmd = [sys.executable, "-m", "workbench.cli", "run", str(script), "--gpus", "1", "--detach"]
    racers = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for p in racers]  # type: ignore[union-attr]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, _, err in results if code == 2)
    assert "only 0 of 1 are free" in loser
    listing = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "ls", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    records = json.loads(listing.stdout)
    assert [r["gpus"] for r in records] == [["0"]]
    subprocess.run(
        [sys.executable, "-m", "workbench.cli", "cancel", records[0]["id"]],
        env=env,
        check=True,
        capture_output=True,
    )
