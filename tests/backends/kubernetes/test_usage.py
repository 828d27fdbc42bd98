"""What Kubernetes workloads use, from the emulator's metrics.k8s.io (its process kubelet's real
processes): the service's report, ``describe`` and ``workbench top``; and a cluster without it."""

from __future__ import annotations

import json
import re
import time

import pytest
import yaml

from tests.backends.local.test_usage import BURN, MiB
from tests.k8s.emulator import Emulator
from tests.k8s.metrics import install_metrics
from workbench.backends.kubernetes.backend import KubernetesBackend
from workbench.backends.kubernetes.metering import NO_API
from workbench.cli import main
from workbench.service import Service

#: BURN for 6 s: scrapes are a second apart here
LONG_BURN = BURN.replace("time.time() - start < 3.0", "time.time() - start < 6.0")


def test_podmetrics_of_a_busy_pod(kube: Service, k8s: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert LONG_BURN != BURN
    install_metrics(k8s, period=1.0)  # timestamps are to the second: one a scrape
    resources = {"cpu": "1", "memory": "1Gi"}
    workload = kube.launch({"kind": "pod", "code": LONG_BURN, "name": "burner", "resources": resources})
    deadline = time.monotonic() + 30
    while (
        kube.get("burner").status != "running"
        or (kube.usage("burner")["summary"] or {}).get("samples", 0) < 1
    ):
        assert time.monotonic() < deadline, kube.usage("burner")
        time.sleep(0.1)
    assert main(["top"]) == 0  # while it runs: listed, with figures read now
    _, *rows = capsys.readouterr().out.splitlines()
    name, kind, status, cpu, memory, gpu, *_ = rows[0].split()
    assert (name, kind, status, gpu) == ("burner", "pod", "running", "-")
    assert re.fullmatch(r"\d+m", cpu) and memory.endswith(("Mi", "Gi"))
    while kube.get("burner").status in ("pending", "running"):  # read every scrape while it runs
        kube.usage("burner")
        time.sleep(0.2)
        assert time.monotonic() < deadline + 30

    final = kube.get(workload.id)
    assert final.status == "succeeded", final.message
    own = json.loads("".join(kube.logs(final.id)).strip())
    report = kube.usage("burner")
    summary = report["summary"]
    assert (report["source"], report["note"]) == ("metrics.k8s.io", None)
    assert 300 * MiB <= summary["peak_rss_bytes"] < 1024 * MiB  # the tree: the holder and the burner
    # near one core: what the process got of one (the machine is shared), give or take windows
    assert summary["peak_cpu_percent"] >= 70 * own["share"]
    # the CPU time of the windows read: the first reading and the last partial window are not in it
    assert 0 < summary["cpu_seconds"] <= own["cpu"] + 0.5 and summary["gpu_util"] is None
    assert len(report["history"]) == summary["samples"] >= 4

    assert main(["describe", "burner"]) == 0
    block = yaml.safe_load(capsys.readouterr().out)["usage"]
    assert float(re.fullmatch(r"peak ([\d.]+)Mi, avg [\d.]+Mi", block["memory"]).group(1)) >= 300
    assert block["source"] == "metrics.k8s.io" and "threads" not in block
    assert main(["top", "burner"]) == 0
    (row,) = capsys.readouterr().out.splitlines()[1:]
    assert row.split()[:3] == ["burner", "pod", "succeeded"] and float(row.split()[-1][:-2]) >= 300


def test_without_the_metrics_api_the_note_says_so(
    kube: Service, k8s: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    kube.launch({"kind": "pod", "code": "import time\ntime.sleep(60)", "name": "sleeper"})
    capsys.readouterr()  # the launch's own lines (the once-per-process outputs warning)
    k8s.reset_requests()
    report = kube.usage("sleeper")
    assert report == {"summary": None, "history": [], "source": "metrics.k8s.io", "note": NO_API}
    ((_, path, query),) = [r for r in k8s.requests if "metrics.k8s.io" in r[1]]  # one list per read
    assert (path, query) == (
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods",
        {"labelSelector": "workbench.jupyter.org/id=sleeper"},
    )
    assert main(["top", "sleeper"]) == 0
    assert capsys.readouterr().err == f"workbench: {NO_API} (sleeper)\n"
    checks = {c.what: c for c in KubernetesBackend.diagnose(kube.settings, required=True)}
    assert (checks["resource metrics"].level, checks["resource metrics"].detail) == ("info", NO_API)
    install_metrics(k8s)
    checks = {c.what: c for c in KubernetesBackend.diagnose(kube.settings, required=True)}
    assert checks["resource metrics"].level == "ok"
