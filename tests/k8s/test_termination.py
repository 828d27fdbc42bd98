"""The process kubelet's termination messages and evictions, as a kubelet does them."""

from __future__ import annotations

import kubernetes

from tests.k8s import Emulator
from tests.k8s.helpers import job, job_condition, job_pods, wait_for

WRITES = (
    "import os, sys\n"
    "path = os.environ['MESSAGE']\n"
    "open(path, 'w').write('x' * 5000 + '\\nthe reason\\n')\n"
    "sys.exit(4)\n"
)


def _terminated(core: kubernetes.client.CoreV1Api, job_name: str) -> object:
    pod = wait_for(
        lambda: [p for p in job_pods(core, job_name) if p.status.phase == "Failed"], what="a failed pod"
    )
    return pod[0].status.container_statuses[0].state.terminated


def test_what_the_container_writes_to_its_termination_message_path_becomes_the_message(
    core: kubernetes.client.CoreV1Api, batch: kubernetes.client.BatchV1Api
) -> None:
    spec = job("says", WRITES)
    container = spec["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "MESSAGE", "value": "/dev/termination-log"}]  # the default path
    batch.create_namespaced_job("default", spec)
    state = _terminated(core, "says")
    assert state.exit_code == 4
    assert len(state.message) == 4096 and state.message.endswith("x\nthe reason\n")  # the file's last 4 KiB


def test_fallback_to_logs_on_error_uses_the_end_of_the_log_when_nothing_was_written(
    core: kubernetes.client.CoreV1Api, batch: kubernetes.client.BatchV1Api
) -> None:
    spec = job("logs", "print('\\n'.join(f'line {i}' for i in range(100))); raise SystemExit(2)")
    spec["spec"]["template"]["spec"]["containers"][0]["terminationMessagePolicy"] = "FallbackToLogsOnError"
    batch.create_namespaced_job("default", spec)
    message = _terminated(core, "logs").message
    assert message.splitlines() == [f"line {i}" for i in range(20, 100)]  # the last 80 lines


def test_a_disrupted_pod_is_retried_without_counting_where_the_failure_policy_ignores_it(
    k8s: Emulator, core: kubernetes.client.CoreV1Api, batch: kubernetes.client.BatchV1Api
) -> None:
    ignore = {
        "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]
    }
    code = "import time\ntime.sleep(300)\n"
    for name, policy in (("kept", ignore), ("lost", None)):
        extra = {"podFailurePolicy": policy} if policy else {}
        batch.create_namespaced_job("default", job(name, code, **extra))
        first = wait_for(lambda name=name: [p for p in job_pods(core, name) if p.status.phase == "Running"])[
            0
        ]
        assert k8s.disrupt(first.metadata.name)
        wait_for(
            lambda p=first: core.read_namespaced_pod(p.metadata.name, "default").status.phase == "Failed"
        )
        disrupted = core.read_namespaced_pod(first.metadata.name, "default").status
        target = next(c for c in disrupted.conditions if c.type == "DisruptionTarget")
        assert (target.status, target.reason) == ("True", "PreemptionByScheduler")
        assert disrupted.container_statuses[0].state.terminated.exit_code == 137
    # Ignore: a new pod, the failure not counted; without the rule: backoffLimit 0 is used up
    assert wait_for(lambda: len(job_pods(core, "kept")) == 2, what="a replacement pod")
    assert batch.read_namespaced_job("kept", "default").status.failed is None
    assert wait_for(lambda: job_condition(batch, "lost"), what="the job to fail") == "Failed"
    assert len(job_pods(core, "lost")) == 1
