"""Resource samples of local workloads, taken by their supervisor, with real processes: the
service's report, ``describe`` and ``workbench top`` (through the CLI's main)."""

from __future__ import annotations

import itertools
import json
import re
import sqlite3
import time

import pytest
import yaml

from workbench.cli import main
from workbench.config import load_settings
from workbench.service import Service

MiB = 2**20
#: Holds 300 MiB in a child process (the tree is sampled, not one process) while the main
#: process burns one core for 3 s and reports the share of a core it actually got.
BURN = """
import json, subprocess, sys, time
holder = subprocess.Popen([sys.executable, "-c",
    "import time\\nb = bytearray(300 * 2**20)\\nfor i in range(0, len(b), 4096): b[i] = 1\\ntime.sleep(60)"])
cpu, start = time.process_time(), time.time()
while time.time() - start < 3.0:
    pass
print(json.dumps({"share": (time.process_time() - cpu) / (time.time() - start),
                  "cpu": time.process_time() - cpu}))
holder.kill()
holder.wait()
"""


def sampled_every(service: Service, monkeypatch: pytest.MonkeyPatch, period: str) -> None:
    """Sample every ``period`` seconds: the setting reaches the supervisor through the launch."""
    monkeypatch.setenv("WORKBENCH_USAGE_PERIOD", period)
    service.settings = load_settings()  # before the service makes its backend


def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_a_busy_pod_shows_its_memory_and_cpu(
    service: Service, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sampled_every(service, monkeypatch, "0.5")
    workload = service.launch({"kind": "pod", "code": BURN, "name": "burner"})
    wait_for(lambda: (service.usage("burner")["summary"] or {}).get("samples", 0) >= 2)
    assert main(["top"]) == 0  # while it runs: it is listed, with figures
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["NAME", "KIND", "STATUS", "CPU", "MEMORY", "GPU", "PEAK", "MEM"]
    name, kind, status, cpu, memory, gpu, *_ = rows[0].split()
    assert (name, kind, status, gpu) == ("burner", "pod", "running", "-")
    assert re.fullmatch(r"\d+m", cpu) and memory.endswith(("Mi", "Gi"))

    final = service.wait(workload.id, timeout=30)
    assert final.status == "succeeded", final.message
    own = json.loads("".join(service.logs(final.id)).strip())

    report = service.usage("burner")
    summary = report["summary"]
    assert report["source"] == "psutil" and report["note"] is None
    assert summary["peak_rss_bytes"] >= 300 * MiB
    # near one core: what the process got of one (the machine is shared), give or take sampling
    assert summary["peak_cpu_percent"] >= 70 * own["share"]
    assert summary["cpu_seconds"] >= 0.7 * own["cpu"]
    assert summary["threads"] >= 2 and summary["gpu_util"] is None
    history = report["history"]
    assert len(history) == summary["samples"] >= 4
    assert all(a["t"] < b["t"] for a, b in itertools.pairwise(history))

    assert main(["describe", "burner"]) == 0
    block = yaml.safe_load(capsys.readouterr().out)["usage"]
    peak_mem, avg_mem = re.fullmatch(r"peak ([\d.]+)Mi, avg ([\d.]+)Mi", block["memory"]).groups()
    assert float(peak_mem) >= 300 and float(avg_mem) <= float(peak_mem)
    peak_cpu = float(re.match(r"peak (\d+)%", block["cpu"]).group(1))
    assert abs(peak_cpu - summary["peak_cpu_percent"]) <= 0.5
    assert block["samples"] == summary["samples"] and block["period"].startswith("0.")

    assert main(["top", "burner"]) == 0
    (row,) = capsys.readouterr().out.splitlines()[1:]
    assert row.split()[:3] == ["burner", "pod", "succeeded"]
    assert float(row.split()[-1].removesuffix("Mi")) >= 300  # PEAK MEM
    assert main(["top", "burner", "-o", "json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["summary"] == summary and entry["source"] == "psutil" and len(entry["history"]) >= 4

    assert main(["top"]) == 0  # nothing runs now
    captured = capsys.readouterr()
    assert captured.out == "" and "no running workloads" in captured.err


def test_sampling_off_records_nothing(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    sampled_every(service, monkeypatch, "0")
    workload = service.launch({"kind": "pod", "code": "import time\ntime.sleep(1.5)"})
    assert service.wait(workload.id, timeout=30).status == "succeeded"
    report = service.usage(workload.id)
    assert (report["summary"], report["history"], report["source"]) == (None, [], "psutil")
    assert "no resource samples" in report["note"]


def test_a_store_error_while_sampling_does_not_fail_the_workload(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    sampled_every(service, monkeypatch, "0.2")
    db = sqlite3.connect(service.store.path)  # every sample is refused by the database itself
    db.execute("CREATE TRIGGER refuse BEFORE INSERT ON usage BEGIN SELECT RAISE(ABORT, 'no room'); END")
    db.close()
    workload = service.launch({"kind": "pod", "code": "import time\ntime.sleep(1.5)\nprint('done')"})
    final = service.wait(workload.id, timeout=30)
    assert (final.status, final.exit_code) == ("succeeded", 0)
    assert "".join(service.logs(final.id)) == "done\n"
    assert service.usage(final.id)["summary"] is None
    log = (service.settings.runs_dir / final.id / "logs" / "supervisor.log").read_text()
    assert log.count("could not record a resource sample (no room)") == 1, log
