"""A workload launched by one process is seen, logged and cancelled by another."""

from __future__ import annotations

import subprocess
import sys
import time

from workbench.service import Service


def test_launched_here_cancelled_from_the_cli(service: Service) -> None:
    workload = service.launch(
        {"kind": "pod", "code": "import time\nprint('up', flush=True)\ntime.sleep(300)"}
    )
    deadline = time.monotonic() + 30
    while "up" not in "".join(service.logs(workload.id)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cli = [sys.executable, "-m", "workbench.cli"]
    listed = subprocess.run([*cli, "ls"], capture_output=True, text=True, check=True).stdout
    assert workload.id in listed and "running" in listed
    logs = subprocess.run([*cli, "logs", workload.id], capture_output=True, text=True, check=True).stdout
    assert logs == "up\n"
    subprocess.run([*cli, "cancel", workload.id], capture_output=True, text=True, check=True)
    assert service.get(workload.id).status == "cancelled"


def test_launched_by_another_process_cancelled_here(service: Service) -> None:
    launcher = (
        "from workbench.service import Service\n"
        "spec = {'kind': 'pod', 'name': 'remote', 'code': 'import time\\ntime.sleep(300)'}\n"
        "print(Service().launch(spec).id)\n"
    )
    subprocess.run([sys.executable, "-c", launcher], capture_output=True, text=True, check=True)
    assert [w.id for w in service.list()] == ["remote"]
    final = service.cancel("remote")
    assert final.status == "cancelled"
    assert service.get("remote").status == "cancelled"
