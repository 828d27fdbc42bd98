"""Pod workloads on the local backend, through the service, with real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from workbench.errors import SpecError, WorkloadFailed
from workbench.runtime import procs
from workbench.service import Service

from ...conftest import assert_nothing_created


def run(service: Service, code: str, wait_s: float = 60, **fields: object):  # type: ignore[no-untyped-def]
    workload = service.launch({"kind": "pod", "code": code, **fields})
    return service.wait(workload.id, timeout=wait_s)


def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_success_records_and_logs(service: Service) -> None:
    final = run(service, "import os\nprint('hello from', os.environ['WORKBENCH_WORKLOAD_ID'])")
    assert final.status == "succeeded"
    assert final.exit_code == 0
    assert final.started and final.ended and final.ended >= final.started
    assert final.pid and final.supervisor_pid
    assert "".join(service.logs(final.id)) == f"hello from {final.id}\n"


def test_failure_shows_user_traceback_only(service: Service) -> None:
    final = run(service, "x = 1\nprint('before')\n1 / 0\n")
    assert final.status == "failed"
    assert final.exit_code == 1
    assert final.message == "exited with code 1: ZeroDivisionError: division by zero"
    logs = "".join(service.logs(final.id))
    assert "before" in logs
    assert 'cell.py", line 3' in logs
    assert "runpy" not in logs and "workbench/runtime" not in logs
    with pytest.raises(WorkloadFailed) as info:
        service.check(final)
    assert info.value.process_exit_code == 1
    assert "ZeroDivisionError" in str(info.value)


def test_sys_exit_code_is_kept(service: Service) -> None:
    final = run(service, "import sys\nsys.exit(3)")
    assert (final.status, final.exit_code) == ("failed", 3)
    assert final.message.startswith("exited with code 3")


def test_send_and_get_round_trip(service: Service) -> None:
    data = np.arange(6).reshape(2, 3)
    workload = service.launch(
        {
            "kind": "pod",
            "code": "total = int(data.sum())\ndoubled = data * 2",
            "send": "data",
            "get": "total,doubled",
        },
        inputs={"data": data},
    )
    final = service.wait(workload.id, timeout=60)
    assert final.status == "succeeded", "".join(service.logs(final.id))
    results = service.results(final.id)
    assert results["total"] == 15
    np.testing.assert_array_equal(results["doubled"], data * 2)


def test_get_of_undefined_name_fails(service: Service) -> None:
    final = run(service, "a = 1", get="missing")
    assert final.status == "failed"
    assert "--get missing: not defined" in final.message
    assert service.results(final.id) == {}


def test_send_of_unknown_variable_creates_nothing(service: Service) -> None:
    with pytest.raises(SpecError, match="--send nope: no such variable"):
        service.launch({"kind": "pod", "code": "pass", "send": "nope"}, inputs={})
    assert_nothing_created(service)


def test_unpicklable_send_is_refused(service: Service) -> None:
    import threading

    with pytest.raises(SpecError, match="--send lock: cannot be pickled"):
        service.launch({"kind": "pod", "code": "pass", "send": "lock"}, inputs={"lock": threading.Lock()})
    assert_nothing_created(service)


def test_cancel_kills_the_whole_process_group(service: Service, tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "print('waiting', flush=True)\n"
        "time.sleep(300)\n"
    )
    workload = service.launch({"kind": "pod", "code": code})
    wait_for(lambda: pidfile.exists() and pidfile.read_text())
    grandchild = int(pidfile.read_text())
    assert procs.is_alive(grandchild)
    final = service.cancel(workload.id)
    assert final.status == "cancelled"
    assert final.message == "cancelled"
    wait_for(lambda: not procs.is_alive(grandchild), timeout=10)
    assert not procs.is_alive(final.pid)
    assert "waiting" in "".join(service.logs(final.id))


def test_timeout_stops_it(service: Service) -> None:
    final = run(service, "import time\nprint('start', flush=True)\ntime.sleep(120)", timeout="1s")
    assert final.status == "failed"
    assert final.message == "timed out after 1.0s and was stopped"
    assert final.exit_code == 128 + signal.SIGTERM  # the runner turns SIGTERM into SystemExit
    assert "start" in "".join(service.logs(final.id))


def test_main_process_exit_kills_leftover_children(service: Service, tmp_path: Path) -> None:
    pidfile = tmp_path / "bg.pid"
    code = (
        "import subprocess, sys\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
    )
    final = run(service, code)
    assert final.status == "succeeded"
    leftover = int(pidfile.read_text())
    wait_for(lambda: not procs.is_alive(leftover), timeout=10)


def test_memory_limit_is_enforced_like_an_oom_kill(service: Service) -> None:
    code = (
        "import time\n"
        "block = bytearray(400 * 1024 * 1024)\n"
        "block[::4096] = b'x' * len(block[::4096])\n"
        "time.sleep(30)"
    )
    final = run(service, code, resources={"memory": "150Mi"})
    assert final.status == "failed"
    assert final.message == "OOMKilled: used more than the memory limit (150Mi)"


def test_environment_threads_and_gpus(service: Service) -> None:
    code = (
        "import json, os\n"
        "keys = ['CUDA_VISIBLE_DEVICES', 'OMP_NUM_THREADS', 'GREETING', 'WORKBENCH_OUTPUT_DIR']\n"
        "print(json.dumps({k: os.environ.get(k) for k in keys}))\n"
    )
    final = run(service, code, env={"GREETING": "hi"}, resources={"cpu": "1500m"})
    env = json.loads("".join(service.logs(final.id)))
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    assert env["OMP_NUM_THREADS"] == "2"
    assert env["GREETING"] == "hi"
    assert Path(env["WORKBENCH_OUTPUT_DIR"]).is_dir()


def test_secret_by_reference(service: Service, wb_home: Path) -> None:
    with pytest.raises(SpecError, match="secret hf-token:token"):
        service.launch({"kind": "pod", "code": "pass", "secrets": ["TOKEN=hf-token:token"]})
    assert_nothing_created(service)
    secret = wb_home / "secrets" / "hf-token" / "token"
    secret.parent.mkdir(parents=True)
    secret.write_text("s3cr3t\n")
    final = run(service, "import os\nprint(len(os.environ['TOKEN']))", secrets=["TOKEN=hf-token:token"])
    assert "".join(service.logs(final.id)) == "6\n"
    assert "s3cr3t" not in (Path(final.run_dir) / "launch.json").read_text()


def test_script_with_arguments(service: Service, tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("import sys\nif __name__ == '__main__':\n    print(sys.argv[1:])\n")
    workload = service.launch({"kind": "pod", "script": "job.py", "args": ["--lr", "0.1"]}, cwd=str(tmp_path))
    final = service.wait(workload.id, timeout=60)
    assert "".join(service.logs(final.id)) == "['--lr', '0.1']\n"


def test_missing_script_creates_nothing(service: Service, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"cannot read script 'nope\.py'"):
        service.launch({"kind": "pod", "script": "nope.py"}, cwd=str(tmp_path))
    assert_nothing_created(service)


def test_follow_streams_while_running(service: Service) -> None:
    code = "import time\nfor i in range(3):\n    print('tick', i, flush=True)\n    time.sleep(0.3)\n"
    workload = service.launch({"kind": "pod", "code": code})
    seen: list[tuple[float, str]] = []
    for chunk in service.logs(workload.id, follow=True):
        seen.append((time.monotonic(), chunk))
    text = "".join(c for _, c in seen)
    assert text == "tick 0\ntick 1\ntick 2\n"
    assert len(seen) >= 2  # arrived in pieces, not all at the end
    assert service.get(workload.id).status == "succeeded"


def test_killed_supervisor_is_reported_not_left_running(service: Service) -> None:
    workload = service.launch({"kind": "pod", "code": "import time\ntime.sleep(300)"})
    wait_for(lambda: service.get(workload.id).status == "running")
    record = service.get(workload.id)
    assert record.supervisor_pid is not None
    os.kill(record.supervisor_pid, signal.SIGKILL)
    wait_for(lambda: service.get(workload.id).status == "failed")
    final = service.get(workload.id)
    assert final.message == "the supervisor was killed (SIGKILL); the workload's processes were stopped"
    wait_for(lambda: not procs.is_alive(final.pid))


def test_workload_outlives_the_process_that_launched_it(wb_home: Path, tmp_path: Path) -> None:
    gate = tmp_path / "release"  # the workload runs until the test releases it
    code = f"import os, time\nwhile not os.path.exists({str(gate)!r}):\n    time.sleep(0.02)\nprint('done')"
    launcher = (
        "import sys\nfrom workbench.service import Service\n"
        "w = Service().launch({'kind': 'pod', 'code': sys.argv[1]})\n"
        "print(w.id)\n"
    )
    out = subprocess.run([sys.executable, "-c", launcher, code], capture_output=True, text=True, check=True)
    name = out.stdout.strip()
    service = Service()
    wait_for(lambda: service.get(name).status == "running")  # the launcher has exited by now
    gate.touch()
    final = service.wait(name, timeout=60)
    assert final.status == "succeeded"
    assert "".join(service.logs(name)) == "done\n"
    service.close()


def test_rm_removes_record_and_run_dir(service: Service) -> None:
    final = run(service, "print(1)")
    run_dir = Path(final.run_dir)
    assert run_dir.is_dir()
    service.delete(final.id)
    assert service.store.list() == []
    assert not run_dir.exists()


def test_duplicate_name_is_a_conflict(service: Service) -> None:
    from workbench.errors import Conflict

    run(service, "pass", name="same")
    with pytest.raises(Conflict, match="'same' already exists"):
        service.launch({"kind": "pod", "code": "pass", "name": "same"})
    assert len(service.store.list()) == 1


def test_get_of_functions_and_cell_classes_uses_cloudpickle(service: Service) -> None:
    code = "class Point:\n    def __init__(self, x):\n        self.x = x\np = Point(3)\nf = lambda v: v + 1\n"
    final = run(service, code, get="p,f")
    assert final.status == "succeeded", "".join(service.logs(final.id))
    results = service.results(final.id)
    assert results["p"].x == 3
    assert results["f"](1) == 2


def test_send_of_a_lambda(service: Service) -> None:
    workload = service.launch(
        {"kind": "pod", "code": "out = square(7)", "send": "square", "get": "out"},
        inputs={"square": lambda v: v * v},
    )
    assert service.wait(workload.id, timeout=60).status == "succeeded"
    assert service.results(workload.id) == {"out": 49}
