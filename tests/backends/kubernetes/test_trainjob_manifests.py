"""Contract tests of the Kubeflow Trainer v2 TrainJob that `train --operator kubeflow` makes.

Every generated TrainJob is validated against the published typed models (PyPI
``kubeflow-trainer-api``): ``from_dict`` must accept it and ``to_dict`` give back exactly the
manifest, so an unknown or mistyped field fails (the models drop unknown keys silently). On top,
the rules of the Trainer's admission webhook that concern us, and every policy check on the
pods the runtime makes of it (:func:`node_pod`), validated strictly as Pods.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import kubernetes_validate
import pytest
from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob

from workbench.backends.base import Payload
from workbench.backends.kubernetes.build import build_manifests, kube_settings
from workbench.backends.kubernetes.hardening import check_workload
from workbench.backends.kubernetes.manifests import QUEUE_LABEL, with_env
from workbench.backends.kubernetes.policy import check_manifest, check_restricted
from workbench.backends.kubernetes.trainjob_manifests import (
    PATCH_MANAGER,
    TOKEN_PATH,
    node_pod,
    with_trainer_env,
)
from workbench.config import load_settings
from workbench.errors import SpecError
from workbench.spec import TrainSpec

from .test_manifests import BUNDLED
from .test_train_manifests import _spec as train_spec
from .test_train_manifests import build as build_train

CASES: dict[str, dict[str, Any]] = {
    "one_node": {"code": "print(1)"},
    "gpus": {
        "script": "train.py",
        "args": ["--epochs", "3"],
        "nodes": 4,
        "procs_per_node": 8,
        "max_restarts": 2,
        "checkpoint_dir": "s3://bucket/ckpt",
        "timeout": "2h",
        "resources": {"gpus": 8, "gpu_type": "NVIDIA-H100-80GB-HBM3", "cpu": "32", "memory": "256Gi"},
    },
    "volumes_and_secrets": {
        "code": "print(1)",
        "nodes": 2,
        "volumes": [
            "pvc/data:/data:ro",
            "configmap/cfg:/etc/cfg",
            "secret/creds:/creds",
            "emptydir:/scratch",
        ],
        "secrets": ["HF_TOKEN=hf:token"],
        "env": {"LR": "0.1"},
        "labels": {"team": "ml"},
        "node_selector": {"zone": "a"},
        "resources": {"shm": "2Gi"},
    },
    "runtime": {"code": "print(1)", "nodes": 2, "runtime": "torch-tuned"},
    "queue": {"code": "1", "nodes": 2, "queue": "team-a", "get": ["model"]},
}
SETTINGS = {"service_account": "trainer", "image_pull_secrets": ("regcred",)}


def _spec(fields: dict[str, Any]) -> TrainSpec:
    return train_spec({"operator": "kubeflow", **fields})


def build(fields: dict[str, Any], *, workload_id: str = "tj-1", **settings: Any) -> list[dict[str, Any]]:
    return build_train({"operator": "kubeflow", **fields}, workload_id=workload_id, **settings)


def validated(doc: dict[str, Any]) -> TrainerV1alpha1TrainJob:
    """The typed model of ``doc``; it must give back exactly ``doc`` (nothing dropped or coerced)."""
    model = TrainerV1alpha1TrainJob.from_dict(copy.deepcopy(doc))
    assert model is not None
    assert json.dumps(model.to_dict(), sort_keys=True) == json.dumps(doc, sort_keys=True)
    return model


def _patch_pod(doc: dict[str, Any]) -> dict[str, Any]:
    (patch,) = doc["spec"]["runtimePatches"]
    (replicated,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert replicated["name"] == "node"
    pod: dict[str, Any] = replicated["template"]["spec"]["template"]
    return pod


@pytest.mark.parametrize("case", sorted(CASES))
def test_trainjobs_validate_against_the_typed_models_and_pass_policy(case: str) -> None:
    docs = build(CASES[case], **SETTINGS)
    assert [d["kind"] for d in docs] == ["ConfigMap", "TrainJob"]
    job = docs[1]
    model = validated(job)
    assert model.api_version == "trainer.kubeflow.org/v1alpha1" and model.spec is not None
    assert check_manifest(job) == []
    pod = node_pod(job)
    for minor in (29, 33, 37):  # the pod the runtime makes of it is a valid, restricted Pod
        as_pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", **pod["metadata"]},
            "spec": pod["spec"],
        }
        assert kubernetes_validate.validate(as_pod, BUNDLED[minor], strict=True) == f"1.{minor}"
    assert check_restricted(pod["spec"]) == []
    # the Trainer's webhook: a domain-prefixed manager, only the runtime's job and container,
    # and no env in a patch of the node container (its env comes from spec.trainer)
    (patch,) = job["spec"]["runtimePatches"]
    assert patch["manager"] == PATCH_MANAGER and "/" in PATCH_MANAGER
    (container,) = _patch_pod(job)["spec"]["containers"]
    assert container["name"] == "node" and "env" not in container


def test_the_trainer_block_and_the_patch_carry_the_pod_template() -> None:
    job = build(CASES["gpus"], **SETTINGS)[1]
    trainer = job["spec"]["trainer"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (4, 8)
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "8"
    assert trainer["resourcesPerNode"]["requests"] == trainer["resourcesPerNode"]["limits"]
    # torchrun without rendezvous flags (the torch plugin's PET_* say it), in the outputs folder
    assert trainer["command"] == ["/bin/sh", "-c", 'cd "$0" && exec "$@"', "/workbench/run/outputs"]
    assert trainer["args"][:3] == ["python", "-m", "torch.distributed.run"]
    assert "--max-restarts=2" in trainer["args"]
    assert not any(
        a.startswith(("--rdzv", "--nnodes", "--node-rank", "--standalone")) for a in trainer["args"]
    )
    assert job["spec"]["activeDeadlineSeconds"] == 7200
    assert job["spec"]["runtimeRef"] == {
        "name": "torch-distributed",
        "kind": "ClusterTrainingRuntime",
        "apiGroup": "trainer.kubeflow.org",
    }
    pod = _patch_pod(job)
    assert pod["metadata"]["labels"]["workbench.jupyter.org/id"] == "tj-1"
    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["securityContext"]["runAsUser"] >= 10000
    context = spec["containers"][0]["securityContext"]
    assert context["allowPrivilegeEscalation"] is False and context["capabilities"] == {"drop": ["ALL"]}
    assert context["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m for m in spec["containers"][0]["volumeMounts"]}
    assert mounts[TOKEN_PATH]["readOnly"] is True  # no API token is mounted over it
    assert {"/dev/shm", "/workbench/run/payload", "/tmp", "/home/workbench"} <= set(mounts)
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["payload"] == {"name": "payload", "configMap": {"name": "tj-1-payload"}}
    assert volumes["shm"]["emptyDir"]["medium"] == "Memory"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["serviceAccountName"] == "trainer" and spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert node_pod(job)["spec"]["automountServiceAccountToken"] is False


def test_volumes_secrets_runtime_and_queue() -> None:
    job = build(CASES["volumes_and_secrets"])[1]
    env = {e["name"]: e for e in job["spec"]["trainer"]["env"]}
    assert env["HF_TOKEN"] == {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}},
    }
    assert env["LR"]["value"] == "0.1"
    spec = _patch_pod(job)["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["volume-0"]["persistentVolumeClaim"] == {"claimName": "data", "readOnly": True}
    assert volumes["volume-2"]["secret"] == {"secretName": "creds"}
    assert spec["nodeSelector"] == {"zone": "a"} and "tolerations" not in spec  # no GPU asked for
    assert job["metadata"]["labels"]["team"] == "ml"
    assert build(CASES["runtime"])[1]["spec"]["runtimeRef"]["name"] == "torch-tuned"
    queued = build(CASES["queue"])[1]
    assert queued["spec"]["suspend"] is True and queued["metadata"]["labels"][QUEUE_LABEL] == "team-a"
    assert "suspend" not in build(CASES["one_node"])[1]["spec"]


def test_an_unknown_or_mistyped_field_fails_the_contract() -> None:
    job = build(CASES["one_node"])[1]
    unknown = copy.deepcopy(job)
    unknown["spec"]["podTemplateOverrides"] = []  # Trainer v2.1's field, gone in v2.3
    with pytest.raises(AssertionError):
        validated(unknown)
    mistyped = copy.deepcopy(job)
    mistyped["spec"]["trainer"]["numNodes"] = "2"
    with pytest.raises(ValueError, match=r"numNodes|num_nodes"):
        validated(mistyped)
    bad_patch = copy.deepcopy(job)
    _patch_pod(bad_patch)["spec"]["containers"][0]["workingDir"] = "/x"  # not patchable
    with pytest.raises(AssertionError):
        validated(bad_patch)


def test_the_policy_checks_the_pods_a_trainjob_makes() -> None:
    job = build(CASES["one_node"])[1]
    unmasked = copy.deepcopy(job)
    mounts = _patch_pod(unmasked)["spec"]["containers"][0]["volumeMounts"]
    mounts[:] = [m for m in mounts if m["mountPath"] != TOKEN_PATH]
    assert any("automountServiceAccountToken" in p for p in check_manifest(unmasked))
    rooted = copy.deepcopy(job)
    _patch_pod(rooted)["spec"]["securityContext"]["runAsUser"] = 0
    assert any("runAsUser must not be 0" in p for p in check_manifest(rooted))


def test_names_and_fields_a_trainjob_cannot_carry_are_refused() -> None:
    with pytest.raises(SpecError, match="must start with a letter"):
        build({"code": "1", "nodes": 2}, workload_id="1-train")
    assert build({"code": "1", "nodes": 10}, workload_id="a" * 54)  # "<54>-node-0-9" fits 63
    with pytest.raises(SpecError, match="pod hostname of the last node"):
        build({"code": "1", "nodes": 10}, workload_id="a" * 55)
    with pytest.raises(SpecError, match="--priority-class high cannot be set on a Kubeflow Trainer TrainJob"):
        build({"code": "1", "priority_class": "high"})


def test_the_launch_pipeline_puts_env_and_the_results_key_in_the_trainer(wb_home: object) -> None:
    settings = load_settings()
    spec = _spec({"code": "model = 1", "nodes": 2, "get": ["model"]})
    payload = Payload(code="model = 1", results_key="ab" * 16, extra={"env": {"MLFLOW_RUN_ID": "r1"}})
    docs = build_manifests("tj-2", spec, payload, settings, kube_settings(settings))
    assert [d["kind"] for d in docs] == ["NetworkPolicy", "Secret", "ConfigMap", "TrainJob"]
    job = docs[-1]
    validated(job)
    env = {e["name"]: e for e in job["spec"]["trainer"]["env"]}
    assert env["MLFLOW_RUN_ID"]["value"] == "r1"
    assert env["WORKBENCH_RESULTS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == docs[1]["metadata"]["name"]
    assert "env" not in _patch_pod(job)["spec"]["containers"][0]
    assert "workbench.jupyter.org/spec" in job["metadata"]["annotations"]
    assert check_workload(docs) == []  # the workload's NetworkPolicy selects the nodes' pods
    # with_env alone would put the variables in the patch: with_trainer_env moves them
    again = with_trainer_env(with_env([copy.deepcopy(job)], {"X": "1"}), {"X": "1"})[0]
    assert "env" not in _patch_pod(again)["spec"]["containers"][0]
    assert {"name": "X", "value": "1"} in again["spec"]["trainer"]["env"]
