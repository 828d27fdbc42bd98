"""Contract tests of the `train` manifests: headless Service + Indexed Job (and the PyTorchJob).

Every document is validated strictly for each supported Kubernetes version, every pod template
passes our Pod Security *restricted* and manifest checks. No Kubeflow CRD schema is available
offline, so the PyTorchJob's pod templates are validated as Pods and its shape is checked here.
"""

from __future__ import annotations

import json
import re
from typing import Any

import kubernetes_validate
import pytest

from workbench.backends.kubernetes.manifests import QUEUE_LABEL, KubeSettings
from workbench.backends.kubernetes.policy import check_manifest, check_restricted
from workbench.backends.kubernetes.train_manifests import RDZV_PORT, build_train_manifests
from workbench.errors import SpecError
from workbench.spec import TrainSpec, parse_spec

from .test_manifests import BUNDLED, MINORS

CASES: dict[str, dict[str, Any]] = {
    "one_node": {"code": "print(1)"},
    "two_nodes": {"code": "print(1)", "nodes": 2, "get": ["model"]},
    "gpus": {
        "script": "train.py",
        "args": ["--epochs", "3"],
        "nodes": 4,
        "procs_per_node": 8,
        "max_restarts": 3,
        "timeout": "2h",
        "resources": {"gpus": 8, "gpu_type": "NVIDIA-H100-80GB-HBM3", "cpu": "32", "memory": "256Gi"},
        # restarts on several nodes resume from a checkpoint every node sees
        "volumes": ["pvc/ckpt:/mnt/ckpt"],
        "checkpoint_dir": "/mnt/ckpt/run-1",
        "output": "s3://bucket/models",
    },
    "queue": {"code": "1", "nodes": 2, "queue": "team-a", "env": {"OMP_NUM_THREADS": "4"}},
}


def _spec(fields: dict[str, Any]) -> TrainSpec:
    spec = parse_spec({"kind": "train", **fields})
    assert isinstance(spec, TrainSpec)
    return spec


def build(fields: dict[str, Any], *, workload_id: str = "tr-1", **settings: Any) -> list[dict[str, Any]]:
    spec = _spec(fields)
    return build_train_manifests(
        workload_id,
        spec,
        code=b"print('x')\n" if spec.script else (spec.code or ""),
        entry_name="train.py" if spec.script else "cell.py",
        inputs=b"\x80\x05in",
        owner="Ada",
        settings=KubeSettings(**settings),
    )


def pod_of(job: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = job["spec"]["template"]["spec"]
    return pod


def _as_pod(template: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": namespace, **template["metadata"]},
        "spec": template["spec"],
    }


@pytest.mark.parametrize("minor", MINORS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_manifests_validate_strictly_and_pass_policy(case: str, minor: int) -> None:
    docs = build(CASES[case], server_version=(1, minor))
    assert [doc["kind"] for doc in docs] == ["ConfigMap", "Service", "Job"]
    for doc in docs:
        assert kubernetes_validate.validate(doc, BUNDLED[minor], strict=True) == f"1.{minor}"
        assert check_manifest(doc) == []
    assert check_restricted(pod_of(docs[2])) == []


def test_indexed_job_and_headless_service_shape() -> None:
    configmap, service, job = build(CASES["two_nodes"], server_version=(1, 33))
    assert service["metadata"]["name"] == job["metadata"]["name"] == "tr-1"
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"] == {"workbench.jupyter.org/id": "tr-1"}
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 2, 2)
    assert (spec["backoffLimitPerIndex"], spec["maxFailedIndexes"]) == (0, 0) and "backoffLimit" not in spec
    pod = pod_of(job)
    assert pod["subdomain"] == "tr-1" and pod["restartPolicy"] == "Never"
    container = pod["containers"][0]
    assert container["command"] == [
        "python", "-m", "torch.distributed.run", "--nproc-per-node=1",
        "--nnodes=2", "--node-rank=$(JOB_COMPLETION_INDEX)", "--rdzv-backend=c10d",
        f"--rdzv-endpoint=tr-1-0.tr-1:{RDZV_PORT}", "--rdzv-id=tr-1",
        "-m", "workbench.runtime.cell", "/workbench/run", "--results-to-log",
    ]  # fmt: skip
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TORCH_GLOO_LAZY_INIT"] == "1" and env["OMP_NUM_THREADS"] == "1"
    # a replaced node can rejoin: no agent keeps a store address of a node that is gone
    assert env["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] == "1"
    assert [e["name"] for e in container["env"]] == sorted(env)
    for doc in (configmap, service, job, job["spec"]["template"]):
        assert doc["metadata"]["labels"]["workbench.jupyter.org/kind"] == "train"
    assert json.loads(configmap["data"]["meta.json"])["get"] == ["model"]
    # only a disruption is retried (without counting); any other failure has used up torchrun's
    # restarts and fails the job (no pod-level retry)
    assert spec["podFailurePolicy"]["rules"] == [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    ]
    # the runner says why it failed in the termination message (torchrun hides its exit code)
    assert env["WORKBENCH_TERMINATION_LOG"] == container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "File"
    assert "WORKBENCH_OUTPUT_LOCATION" not in env and "WORKBENCH_CHECKPOINT_DIR" not in env


def test_one_node_is_standalone_and_user_env_wins() -> None:
    command = pod_of(build(CASES["one_node"])[2])["containers"][0]["command"]
    assert "--standalone" in command and not any(a.startswith("--rdzv") for a in command)
    env = {e["name"]: e.get("value") for e in pod_of(build(CASES["queue"])[2])["containers"][0]["env"]}
    assert env["OMP_NUM_THREADS"] == "4"


def test_version_gated_fields() -> None:
    # --max-restarts 3 is torchrun's budget alone: the Job never retries a failed node
    old = build(CASES["gpus"], server_version=(1, 29))[2]["spec"]
    assert old["backoffLimit"] == 0 and "backoffLimitPerIndex" not in old and "maxFailedIndexes" not in old
    assert "successPolicy" not in old
    new = build(CASES["gpus"], server_version=(1, 33))[2]["spec"]
    assert new["backoffLimitPerIndex"] == 0 and new["maxFailedIndexes"] == 0
    ancient = build(CASES["gpus"], server_version=(1, 25))[2]
    assert "podFailurePolicy" not in ancient["spec"]
    kubernetes_validate.validate(ancient, BUNDLED[25], strict=True)


def test_gpu_rules_per_node() -> None:
    _, _, job = build(CASES["gpus"])
    pod = pod_of(job)
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert {"name": "shm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert "--nproc-per-node=8" in container["command"] and "--max-restarts=3" in container["command"]
    assert job["spec"]["activeDeadlineSeconds"] == 7200


def test_kueue_suspends_and_labels() -> None:
    _, service, job = build(CASES["queue"])
    assert job["spec"]["suspend"] is True and job["metadata"]["labels"][QUEUE_LABEL] == "team-a"
    assert QUEUE_LABEL not in service["metadata"]["labels"]


def test_names_must_fit() -> None:
    with pytest.raises(SpecError, match=r"pod hostname of the last node .* at most 63"):
        build({"code": "1", "nodes": 100}, workload_id="a" * 61)
    assert build({"code": "1", "nodes": 10}, workload_id="a" * 61)  # "<61>-9" fits 63
    with pytest.raises(SpecError, match="must start with a letter"):
        build({"code": "1", "nodes": 2}, workload_id="1-train")


def test_same_input_same_dicts() -> None:
    assert json.dumps(build(CASES["gpus"])) == json.dumps(build(CASES["gpus"]))


@pytest.mark.parametrize("minor", [29, 33, 37])
def test_pytorchjob_pod_templates_validate_as_pods(minor: int) -> None:
    docs = build(
        {**CASES["gpus"], "operator": "kubeflow"}, server_version=(1, minor), kubeflow_api="PyTorchJob"
    )
    assert [d["kind"] for d in docs] == ["ConfigMap", "PyTorchJob"]
    job = docs[1]
    assert job["apiVersion"] == "kubeflow.org/v1"
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert (replicas["Master"]["replicas"], replicas["Worker"]["replicas"]) == (1, 3)
    assert job["spec"]["nprocPerNode"] == "8"
    assert job["spec"]["runPolicy"] == {
        "backoffLimit": 0,  # torchrun restarts the workers inside the pods (--max-restarts 3)
        "cleanPodPolicy": "Running",  # a failed job's other nodes are stopped, as a Job's are
        "ttlSecondsAfterFinished": 86400,
        "activeDeadlineSeconds": 7200,
    }
    for role in ("Master", "Worker"):
        assert replicas[role]["restartPolicy"] == "Never"
        template = replicas[role]["template"]
        container = template["spec"]["containers"][0]
        assert container["name"] == "pytorch"  # the operator injects PET_* into this container only
        assert not any(a.startswith(("--rdzv", "--nnodes", "--node-rank")) for a in container["command"])
        assert "subdomain" not in template["spec"]
        assert kubernetes_validate.validate(_as_pod(template), BUNDLED[minor], strict=True) == f"1.{minor}"
        assert check_restricted(template["spec"]) == []
    assert check_manifest(job) == []
    one = build({"code": "1", "operator": "kubeflow"}, kubeflow_api="PyTorchJob")[1]
    assert "Worker" not in one["spec"]["pytorchReplicaSpecs"]


def test_checkpoint_dir_and_output_reach_every_node() -> None:
    _, _, job = build(CASES["gpus"])
    container = pod_of(job)["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["WORKBENCH_CHECKPOINT_DIR"] == "/mnt/ckpt/run-1"
    assert env["WORKBENCH_OUTPUT_LOCATION"] == "s3://bucket/models/tr-1"  # <output>/<workload id>
    assert {"name": "volume-0", "mountPath": "/mnt/ckpt", "readOnly": False} in container["volumeMounts"]
    url = build({"code": "1", "nodes": 2, "max_restarts": 1, "checkpoint_dir": "gs://b/ckpt"})[2]
    assert {"name": "WORKBENCH_CHECKPOINT_DIR", "value": "gs://b/ckpt"} in pod_of(url)["containers"][0]["env"]


REFUSED = [
    (
        {"nodes": 2, "max_restarts": 2},
        r"^--max-restarts 2 on 2 nodes needs --checkpoint-dir: each node's outputs folder is its "
        r"pod's own disk",
        2,
    ),
    (
        {"checkpoint_dir": "ckpt"},
        r"^--checkpoint-dir 'ckpt' is a relative path; in the pod it must be an absolute path",
        "ckpt",
    ),
    (
        {"checkpoint_dir": "/data/ckpt", "volumes": ["pvc/d:/mnt/d", "emptydir:/data"]},
        r"^--checkpoint-dir '/data/ckpt' is not on a --volume pvc mount \(the pvc mounts are /mnt/d\)",
        "/data/ckpt",
    ),
    (
        {"checkpoint_dir": "/mnt/d/c", "volumes": ["pvc/d:/mnt/d:ro"]},
        r"^--checkpoint-dir '/mnt/d/c' is on a read-only volume: --volume pvc/d:/mnt/d:ro",
        "/mnt/d/c",
    ),
    ({"output": "out"}, r"^--output 'out' is a relative path", "out"),
    (
        {"output": "/mnt/out"},
        r"^--output '/mnt/out' is not on a --volume pvc mount \(no --volume pvc is mounted\)",
        "/mnt/out",
    ),
]


@pytest.mark.parametrize(("fields", "says", "value"), REFUSED)
@pytest.mark.parametrize("operator", ["job", "kubeflow"])
def test_locations_the_pods_cannot_keep_files_in_are_refused(
    fields: dict[str, Any], says: str, value: object, operator: str
) -> None:
    with pytest.raises(SpecError) as info:
        build({"code": "1", "operator": operator, **fields})
    line = info.value.one_line()
    assert "\n" not in line and info.value.value == value
    assert re.search(says, line), line
    assert "--volume" in (info.value.hint or "")  # what to run instead


def test_one_node_may_restart_without_a_checkpoint_dir() -> None:
    # its outputs folder outlives torchrun's restarts: the pod stays
    command = pod_of(build({"code": "1", "max_restarts": 2})[2])["containers"][0]["command"]
    assert "--max-restarts=2" in command
