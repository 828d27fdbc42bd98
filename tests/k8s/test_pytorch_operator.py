"""The stand-in for the Kubeflow training operator (pytorch_operator.py): pods, Services, env, status."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import pytest

from tests.k8s import Emulator
from tests.k8s.helpers import PY, wait_for
from tests.k8s.pytorch_operator import GROUP, PLURAL, install_pytorch_operator

# each node prints the environment the operator gave it, then exits with its rank's code
REPORT = (
    "import json, os, sys; "
    "print(json.dumps({k: v for k, v in os.environ.items() if k.startswith(('PET_', 'MASTER_')) "
    "or k in ('WORLD_SIZE', 'RANK')})); "
    "sys.exit(int(os.environ.get('FAIL_RANK', '-1') == os.environ['RANK']))"
)


def pytorchjob(name: str, workers: int, restart: str = "Never", **env: str) -> dict[str, Any]:
    def replica(count: int) -> dict[str, Any]:
        container = {
            "name": "pytorch",
            "image": "python:3.11",
            "command": [PY, "-c", REPORT],
            "env": [{"name": k, "value": v} for k, v in env.items()],
        }
        return {
            "replicas": count,
            "restartPolicy": restart,
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
        }

    specs = {"Master": replica(1)}
    if workers:
        specs["Worker"] = replica(workers)
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": {"runPolicy": {"backoffLimit": 0}, "nprocPerNode": "2", "pytorchReplicaSpecs": specs},
    }


def condition(custom: kubernetes.client.CustomObjectsApi, name: str, type_: str) -> bool:
    job = custom.get_namespaced_custom_object(GROUP, "v1", "default", PLURAL, name)
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c["type"] == type_ and c["status"] == "True" for c in conditions)


@pytest.fixture
def custom(k8s: Emulator, k8s_client: kubernetes.client.ApiClient) -> kubernetes.client.CustomObjectsApi:
    install_pytorch_operator(k8s)
    return kubernetes.client.CustomObjectsApi(k8s_client)


def test_master_and_workers_get_pods_services_and_torchrun_env(
    k8s: Emulator, core: kubernetes.client.CoreV1Api, custom: kubernetes.client.CustomObjectsApi
) -> None:
    custom.create_namespaced_custom_object(GROUP, "v1", "default", PLURAL, pytorchjob("pj", 2))
    names = ["pj-master-0", "pj-worker-0", "pj-worker-1"]
    wait_for(lambda: condition(custom, "pj", "Succeeded"), what="the PyTorchJob to succeed")
    wait_for(
        lambda: all((k8s.get("pods", n) or {}).get("status", {}).get("phase") == "Succeeded" for n in names),
        what="every node to exit",
    )
    job = custom.get_namespaced_custom_object(GROUP, "v1", "default", PLURAL, "pj")
    assert job["status"]["conditions"][0]["type"] == "Created"
    assert job["status"]["startTime"] and job["status"]["completionTime"]
    master_status = job["status"]["replicaStatuses"]["Master"]
    assert (master_status["active"], master_status["succeeded"], master_status["failed"]) == (0, 1, 0)
    port = None
    for rank, name in enumerate(names):
        pod = core.read_namespaced_pod(name, "default")
        labels = pod.metadata.labels
        kind, index = ("master", 0) if rank == 0 else ("worker", rank - 1)
        assert labels["app"] == "pj"  # the template's own labels are kept
        assert labels["training.kubeflow.org/job-name"] == "pj"
        assert labels["training.kubeflow.org/replica-type"] == kind
        assert labels["training.kubeflow.org/replica-index"] == str(index)
        assert labels["training.kubeflow.org/operator-name"] == "pytorchjob-controller"
        assert [(r.kind, r.name) for r in pod.metadata.owner_references] == [("PyTorchJob", "pj")]
        env = {e.name: e.value for e in pod.spec.containers[0].env}
        assert (env["PET_MASTER_ADDR"], env["MASTER_ADDR"]) == ("pj-master-0", "pj-master-0")
        assert (env["PET_NNODES"], env["PET_NODE_RANK"], env["RANK"]) == ("3", str(rank), str(rank))
        assert env["WORLD_SIZE"] == "6" and env["PET_NPROC_PER_NODE"] == "2"
        port = port or env["PET_MASTER_PORT"]
        assert env["PET_MASTER_PORT"] == env["MASTER_PORT"] == port
        # what the process saw: the master's Service name resolved to where every pod lives
        seen = json.loads(core.read_namespaced_pod_log(name, "default"))
        assert seen["PET_MASTER_ADDR"] == seen["MASTER_ADDR"] == "127.0.0.1"
        assert seen["PET_NODE_RANK"] == str(rank)
        service = core.read_namespaced_service(name, "default")
        assert service.spec.cluster_ip == "None"
        assert service.spec.selector["training.kubeflow.org/replica-index"] == str(index)
        assert service.spec.ports[0].port == int(port)

    custom.delete_namespaced_custom_object(GROUP, "v1", "default", PLURAL, "pj")
    wait_for(
        lambda: not any(k8s.get("pods", n) or k8s.get("services", n) for n in names),
        what="the pods and Services to be collected",
    )


def test_a_failed_worker_fails_the_job_and_clean_pod_policy_stops_the_rest(
    k8s: Emulator, core: kubernetes.client.CoreV1Api, custom: kubernetes.client.CustomObjectsApi
) -> None:
    body = pytorchjob("bad", 1, FAIL_RANK="1")
    # the master would run on; cleanPodPolicy Running stops it once the job failed
    body["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["command"] = [
        PY,
        "-c",
        "import time; time.sleep(60)",
    ]
    body["spec"]["runPolicy"]["cleanPodPolicy"] = "Running"
    custom.create_namespaced_custom_object(GROUP, "v1", "default", PLURAL, body)
    wait_for(lambda: condition(custom, "bad", "Failed"), what="the PyTorchJob to fail")
    job = custom.get_namespaced_custom_object(GROUP, "v1", "default", PLURAL, "bad")
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert "1 Worker replica(s) failed" in failed["message"]
    assert job["status"]["replicaStatuses"]["Worker"]["failed"] == 1
    assert not condition(custom, "bad", "Succeeded")
    wait_for(lambda: k8s.get("pods", "bad-master-0") is None, what="the running master to be removed")
    assert core.read_namespaced_pod("bad-worker-0", "default").status.phase == "Failed"  # kept: not running
    wait_for(lambda: not k8s.live_pids(), what="every process to end")


def test_backoff_limit_counts_restarts_of_on_failure_replicas(
    custom: kubernetes.client.CustomObjectsApi,
) -> None:
    custom.create_namespaced_custom_object(
        GROUP, "v1", "default", PLURAL, pytorchjob("flaky", 0, "OnFailure", FAIL_RANK="0")
    )
    wait_for(lambda: condition(custom, "flaky", "Failed"), what="the backoff limit")
    job = custom.get_namespaced_custom_object(GROUP, "v1", "default", PLURAL, "flaky")
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert "backoff limit" in failed["message"]
    assert "Worker" not in job["status"]["replicaStatuses"]
