"""The stand-in for Kubeflow Trainer v2 and JobSet (trainer_operator.py): objects, env, status."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import pytest
from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob

from tests.k8s import Emulator
from tests.k8s.helpers import PY, wait_for
from tests.k8s.trainer_operator import GROUP, JOBSET_GROUP, install_trainer_operator

# each node prints the torch plugin's environment, then exits 1 on FAIL_RANK
REPORT = (
    "import json, os, sys; "
    "print(json.dumps({k: v for k, v in os.environ.items() if k.startswith('PET_')})); "
    "sys.exit(int(os.environ.get('FAIL_RANK', '-1') == os.environ['PET_NODE_RANK']))"
)


def trainjob(name: str, nodes: int, **spec: Any) -> dict[str, Any]:
    env = [{"name": k, "value": v} for k, v in spec.pop("env", {}).items()]
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": name},
        "spec": {
            "runtimeRef": {"name": "torch-distributed"},
            "trainer": {"image": "python:3.11", "command": [PY, "-c", REPORT], "numNodes": nodes, "env": env},
            **spec,
        },
    }


def conditions(custom: kubernetes.client.CustomObjectsApi, name: str) -> dict[str, str]:
    job = custom.get_namespaced_custom_object(GROUP, "v1alpha1", "default", "trainjobs", name)
    return {
        c["type"]: c["reason"]
        for c in (job.get("status") or {}).get("conditions") or []
        if c["status"] == "True"
    }


@pytest.fixture
def custom(k8s: Emulator, k8s_client: kubernetes.client.ApiClient) -> kubernetes.client.CustomObjectsApi:
    install_trainer_operator(k8s)
    return kubernetes.client.CustomObjectsApi(k8s_client)


def test_a_trainjob_becomes_a_jobset_a_service_and_an_indexed_job_with_the_torch_env(
    k8s: Emulator, k8s_client: kubernetes.client.ApiClient, custom: kubernetes.client.CustomObjectsApi
) -> None:
    custom.create_namespaced_custom_object(GROUP, "v1alpha1", "default", "trainjobs", trainjob("tj", 2))
    wait_for(lambda: "Complete" in conditions(custom, "tj"), timeout=30, what="the TrainJob to complete")
    jobset = k8s.get("jobsets", "tj", group=JOBSET_GROUP)
    assert jobset is not None and jobset["metadata"]["ownerReferences"][0]["kind"] == "TrainJob"
    service = k8s.get("services", "tj")
    assert service is not None and service["spec"]["clusterIP"] == "None"
    job = k8s.get("jobs", "tj-node-0", group="batch")
    assert job is not None and job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 2
    core = kubernetes.client.CoreV1Api(k8s_client)
    pods = core.list_namespaced_pod("default", label_selector="jobset.sigs.k8s.io/jobset-name=tj").items
    assert sorted(p.metadata.name.rsplit("-", 1)[0] for p in pods) == ["tj-node-0-0", "tj-node-0-1"]
    for pod in pods:
        assert pod.spec.subdomain == "tj" and pod.spec.hostname == pod.metadata.name.rsplit("-", 1)[0]
        env = json.loads(core.read_namespaced_pod_log(pod.metadata.name, "default"))
        index = pod.metadata.labels["batch.kubernetes.io/job-completion-index"]
        assert env["PET_NODE_RANK"] == index and env["PET_NNODES"] == "2"
        assert env["PET_MASTER_ADDR"] == "127.0.0.1"  # tj-node-0-0.tj, through the Service
        assert int(env["PET_MASTER_PORT"]) > 0
    done = custom.get_namespaced_custom_object(GROUP, "v1alpha1", "default", "trainjobs", "tj")
    model = TrainerV1alpha1TrainJob.from_dict(done)  # the status has the published shape
    assert model is not None and model.status is not None and model.status.jobs_status is not None
    assert model.status.jobs_status[0].succeeded == 1
    custom.delete_namespaced_custom_object(GROUP, "v1alpha1", "default", "trainjobs", "tj")
    wait_for(lambda: k8s.get("jobs", "tj-node-0", group="batch") is None, timeout=30, what="the Job to go")
    wait_for(lambda: not k8s.live_pids(), timeout=30, what="the pods to end")


def test_a_failed_node_fails_the_jobset_and_the_trainjob(
    k8s: Emulator, custom: kubernetes.client.CustomObjectsApi
) -> None:
    body = trainjob("bad", 2, env={"FAIL_RANK": "1"})
    custom.create_namespaced_custom_object(GROUP, "v1alpha1", "default", "trainjobs", body)
    wait_for(lambda: "Failed" in conditions(custom, "bad"), timeout=30, what="the TrainJob to fail")
    assert conditions(custom, "bad")["Failed"] == "BackoffLimitExceeded"  # the Job's reason, kept
    jobset = k8s.get("jobsets", "bad", group=JOBSET_GROUP)
    assert jobset is not None and any(c["type"] == "Failed" for c in jobset["status"]["conditions"])


def test_suspend_makes_no_pods_and_a_deadline_fails_with_deadline_exceeded(
    k8s: Emulator, custom: kubernetes.client.CustomObjectsApi
) -> None:
    custom.create_namespaced_custom_object(
        GROUP, "v1alpha1", "default", "trainjobs", trainjob("held", 1, suspend=True)
    )
    wait_for(lambda: "Suspended" in conditions(custom, "held"), timeout=10, what="the Suspended condition")
    assert k8s.get("jobs", "held-node-0", group="batch")["spec"]["suspend"] is True  # type: ignore[index]
    assert not k8s.live_pids()
    slow = trainjob("slow", 1, activeDeadlineSeconds=1)
    slow["spec"]["trainer"]["command"] = [PY, "-c", "import time; time.sleep(300)"]
    custom.create_namespaced_custom_object(GROUP, "v1alpha1", "default", "trainjobs", slow)
    wait_for(
        lambda: conditions(custom, "slow").get("Failed") == "DeadlineExceeded",
        timeout=30,
        what="the deadline",
    )
    wait_for(
        lambda: k8s.get("jobsets", "slow", group=JOBSET_GROUP) is None, timeout=30, what="the JobSet to go"
    )
    wait_for(lambda: not k8s.live_pids(), timeout=30, what="its pods to end")
