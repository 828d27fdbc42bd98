"""Contract tests of the Dask manifests: the DaskCluster and DaskAutoscaler against the CRD schemas
shipped in the installed dask-kubernetes package, every embedded pod template (and the scheduler
Service) through kubernetes-validate strict for each supported version, our own policy checks,
and the object rules of DESIGN.md (labels, GPUs, secrets by reference, names)."""

from __future__ import annotations

import copy
import functools
import importlib.util
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from workbench.backends.kubernetes.dask_manifests import build_dask_manifests
from workbench.backends.kubernetes.policy import check_hardened, check_manifest, check_restricted
from workbench.backends.kubernetes.settings import KubeSettings
from workbench.errors import SpecError
from workbench.service import Service
from workbench.spec import DaskSpec, parse_spec

from .test_manifests import BUNDLED, MINORS

CRDS = "operator/deployment/helm/dask-kubernetes-operator/crds"

# name -> (spec fields, KubeSettings fields)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "plain": ({}, {}),
    "gpu": (
        {
            "workers": 4,
            "threads": 8,
            "resources": {
                "gpus": 2,
                "gpu_type": "NVIDIA-A100-SXM4-80GB",
                "shm": "8Gi",
                "cpu": "8",
                "memory": "64Gi",
            },
        },
        {},
    ),
    "mig": ({"resources": {"gpus": 1}}, {"gpu_resource": "nvidia.com/mig-1g.10gb"}),
    "adapt": ({"workers": 1, "adapt": "2:8", "idle_timeout": "10m"}, {"namespace": "research"}),
    "secrets_volumes": (
        {
            "env": {"B_VAR": "2", "A_VAR": "1"},
            "secrets": ["HF_TOKEN=hf-token:token"],
            "volumes": ["pvc/data:/data:ro", "configmap/settings:/etc/settings", "emptydir:/tmp/spill"],
            "labels": {"team": "ml", "example.com/project": "llm"},
            "node_selector": {"pool": "cpu"},
            "priority_class": "high-priority",
        },
        {},
    ),
    "account": (
        {"image": "registry.example.com/ml/workbench:1.0", "idle_timeout": None},
        {"service_account": "workbench-runner", "image_pull_secrets": ("regcred",)},
    ),
}


def _spec(fields: dict[str, Any]) -> DaskSpec:
    spec = parse_spec({"kind": "dask", **fields})
    assert isinstance(spec, DaskSpec)
    return spec


def build(
    fields: dict[str, Any], *, workload_id: str = "dask-1", owner: str = "Ada Lovelace", **settings: Any
) -> list[dict[str, Any]]:
    return build_dask_manifests(workload_id, _spec(fields), owner=owner, settings=KubeSettings(**settings))


def build_case(name: str) -> list[dict[str, Any]]:
    fields, settings = CASES[name]
    return build(fields, **settings)


def pod_specs(cluster: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {part: cluster["spec"][part]["spec"] for part in ("scheduler", "worker")}


def container(cluster: dict[str, Any], part: str) -> dict[str, Any]:
    found: dict[str, Any] = pod_specs(cluster)[part]["containers"][0]
    return found


def args_of(cluster: dict[str, Any], part: str) -> dict[str, str]:
    args = container(cluster, part)["args"]
    return {
        flag: value
        for flag, value in itertools.pairwise(args)
        if flag.startswith("--") and not value.startswith("--")
    }


# -- the CRD schemas of the installed operator ------------------------------------------------------------


def _strict(schema: Any) -> Any:
    """The schema with unknown fields refused (the API server would silently prune them)."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if (
        isinstance(out.get("properties"), dict)
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_validator(kind: str) -> jsonschema.protocols.Validator:
    """The v1 schema of the operator's CRD for ``kind``, from the Helm chart inside the package."""
    spec = importlib.util.find_spec("dask_kubernetes")
    assert spec is not None and spec.submodule_search_locations
    path = Path(spec.submodule_search_locations[0]) / CRDS / f"{kind.lower()}.yaml"
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load(path.read_text(), Loader=loader)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return jsonschema.Draft7Validator(_strict(version["schema"]["openAPIV3Schema"]))


def assert_crd_valid(doc: dict[str, Any]) -> None:
    errors = sorted(crd_validator(doc["kind"]).iter_errors({"spec": doc["spec"]}), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)


@pytest.mark.parametrize("case", sorted(CASES))
def test_custom_resources_match_the_operators_crds(case: str) -> None:
    docs = build_case(case)
    assert [doc["kind"] for doc in docs] == ["DaskCluster", "DaskAutoscaler"][: len(docs)]
    assert all(doc["apiVersion"] == "kubernetes.dask.org/v1" for doc in docs)
    for doc in docs:
        assert_crd_valid(doc)


def test_crd_validation_is_live() -> None:
    cluster = build_case("plain")[0]
    broken = copy.deepcopy(cluster)
    broken["spec"]["worker"]["spec"]["containers"][0]["gpus"] = 1  # not a field of a container
    with pytest.raises(AssertionError, match="gpus"):
        assert_crd_valid(broken)
    broken = copy.deepcopy(cluster)
    broken["spec"]["worker"]["replicas"] = "2"
    with pytest.raises(AssertionError, match="is not of type 'integer'"):
        assert_crd_valid(broken)
    with pytest.raises(AssertionError, match="'maximum' is a required property"):
        assert_crd_valid({"kind": "DaskAutoscaler", "spec": {"cluster": "x", "minimum": 1}})


# -- strict Kubernetes schemas and our policy checks -------------------------------------------------------


def as_pod(pod_spec: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "labels": labels}, "spec": pod_spec}


@pytest.mark.parametrize("minor", MINORS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_pod_templates_validate_strictly_and_pass_policy(case: str, minor: int) -> None:
    docs = build_case(case)
    cluster = docs[0]
    for part, pod_spec in pod_specs(cluster).items():
        pod = as_pod(pod_spec, cluster["spec"][part]["metadata"]["labels"])
        assert kubernetes_validate.validate(pod, BUNDLED[minor], strict=True) == f"1.{minor}"
        assert check_restricted(pod_spec) == [], part
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "dask-1-scheduler"},
        "spec": cluster["spec"]["scheduler"]["service"],
    }
    assert kubernetes_validate.validate(service, BUNDLED[minor], strict=True) == f"1.{minor}"
    for doc in docs:
        assert check_manifest(doc) == []


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_input_same_dicts(case: str) -> None:
    first, second = build_case(case), build_case(case)
    assert json.dumps(first) == json.dumps(second)
    first[0]["metadata"]["labels"]["x"] = "y"  # no dict shared between objects or parts
    cluster = first[0]
    assert "x" not in cluster["spec"]["worker"]["metadata"]["labels"]
    assert "x" not in cluster["spec"]["scheduler"]["metadata"]["labels"]
    assert "x" not in second[0]["metadata"]["labels"]


# -- what the operator and the workers are told ------------------------------------------------------------


def test_scheduler_worker_and_service_follow_the_operator() -> None:
    cluster = build({"workers": 3, "threads": 4, "resources": {"memory": "2Gi"}, "idle_timeout": "90s"})[0]
    spec = cluster["spec"]
    assert (cluster["metadata"]["name"], spec["idleTimeout"], spec["worker"]["replicas"]) == ("dask-1", 90, 3)
    assert container(cluster, "scheduler")["args"][:2] == ["dask", "scheduler"]
    assert args_of(cluster, "scheduler") == {
        "--host": "0.0.0.0",
        "--port": "8786",
        "--dashboard-address": ":8787",
    }
    assert container(cluster, "worker")["args"][:2] == ["dask", "worker"]
    assert "--dashboard" in container(cluster, "worker")["args"]
    assert args_of(cluster, "worker") == {
        "--name": "$(DASK_WORKER_NAME)",
        "--nthreads": "4",
        "--memory-limit": str(2 * 1024**3),
        "--dashboard-address": ":8788",
        "--local-directory": "/workbench/scratch",
    }
    service = spec["scheduler"]["service"]
    assert service["selector"] == {"dask.org/cluster-name": "dask-1", "dask.org/component": "scheduler"}
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["ports"]] == [
        ("tcp-comm", 8786, "tcp-comm"),
        ("http-dashboard", 8787, "http-dashboard"),
    ]
    ports = {p["name"]: p["containerPort"] for p in container(cluster, "scheduler")["ports"]}
    assert ports == {"tcp-comm": 8786, "http-dashboard": 8787}
    env = {e["name"] for e in container(cluster, "worker")["env"]}
    assert not env & {"DASK_SCHEDULER_ADDRESS", "DASK_WORKER_NAME"}  # the operator sets them
    assert "restartPolicy" not in pod_specs(cluster)["worker"]  # Deployments run them: Always


def test_adapt_clamps_the_first_replicas_and_adds_the_autoscaler() -> None:
    cluster, autoscaler = build({"workers": 1, "adapt": "2:8"})
    assert cluster["spec"]["worker"]["replicas"] == 2
    assert autoscaler["metadata"]["name"] == "dask-1"
    assert autoscaler["spec"] == {"cluster": "dask-1", "minimum": 2, "maximum": 8}
    assert build({"workers": 20, "adapt": "0:4"})[0]["spec"]["worker"]["replicas"] == 4
    assert build({"idle_timeout": None})[0]["spec"]["idleTimeout"] == 0


def test_labels_on_every_object_and_pod_template() -> None:
    fields, settings = CASES["secrets_volumes"]
    docs = build({**fields, "adapt": "1:2"}, workload_id="nb-7", owner="Jane.Doe@Example.COM", **settings)
    expected = {
        "app.kubernetes.io/name": "jupyter-ml-workbench",
        "app.kubernetes.io/managed-by": "jupyter-ml-workbench",
        "app.kubernetes.io/component": "dask",
        "workbench.jupyter.org/id": "nb-7",
        "workbench.jupyter.org/kind": "dask",
        "workbench.jupyter.org/owner": "jane.doe-example.com",
        "team": "ml",
        "example.com/project": "llm",
    }
    cluster, autoscaler = docs
    for labels in (
        cluster["metadata"]["labels"],
        autoscaler["metadata"]["labels"],
        cluster["spec"]["scheduler"]["metadata"]["labels"],
        cluster["spec"]["worker"]["metadata"]["labels"],
    ):
        assert labels == expected
    assert cluster["metadata"]["annotations"] == {"workbench.jupyter.org/owner": "Jane.Doe@Example.COM"}


def test_gpus_only_on_workers() -> None:
    cluster = build_case("gpu")[0]
    worker, scheduler = pod_specs(cluster)["worker"], pod_specs(cluster)["scheduler"]
    limits = {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "2"}
    assert container(cluster, "worker")["resources"] == {"requests": limits, "limits": limits}
    assert worker["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert worker["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}} in worker["volumes"]
    assert {"name": "shm", "mountPath": "/dev/shm"} in container(cluster, "worker")["volumeMounts"]
    defaults = {"cpu": "500m", "memory": "1Gi"}  # the scheduler: the settings' defaults, no GPU
    assert container(cluster, "scheduler")["resources"] == {"requests": defaults, "limits": defaults}
    assert not {"nodeSelector", "tolerations"} & set(scheduler)
    assert [v["name"] for v in scheduler["volumes"]] == ["scratch", "tmp", "home"]
    mig = build_case("mig")[0]
    limits = container(mig, "worker")["resources"]["limits"]
    assert limits == {**defaults, "nvidia.com/mig-1g.10gb": "1"}


def test_security_secrets_volumes_and_account() -> None:
    cluster = build_case("secrets_volumes")[0]
    worker, scheduler = pod_specs(cluster)["worker"], pod_specs(cluster)["scheduler"]
    for pod in (worker, scheduler):
        assert pod["securityContext"]["runAsUser"] == 10001 and pod["securityContext"]["runAsNonRoot"]
        assert pod["automountServiceAccountToken"] is False
        assert check_hardened(pod) == []
        assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
        assert (mounts["/tmp"], mounts["/home/workbench"]) == ("tmp", "home")
        assert pod["nodeSelector"] == {"pool": "cpu"} and pod["priorityClassName"] == "high-priority"
    env = container(cluster, "worker")["env"]
    assert [e["name"] for e in env] == ["A_VAR", "B_VAR", "HF_TOKEN", "HOME", "PYTHONUNBUFFERED"]
    assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}} in env
    assert "HF_TOKEN" not in {e["name"] for e in container(cluster, "scheduler")["env"]}  # no user code there
    mounts = {m["mountPath"]: m for m in container(cluster, "worker")["volumeMounts"]}
    assert mounts["/data"]["readOnly"] is True and "/etc/settings" in mounts and "/tmp/spill" in mounts
    account = build_case("account")[0]
    for pod in pod_specs(account).values():
        assert (
            pod["serviceAccountName"] == "workbench-runner" and pod["automountServiceAccountToken"] is False
        )
        assert pod["imagePullSecrets"] == [{"name": "regcred"}]
        assert pod["containers"][0]["image"] == "registry.example.com/ml/workbench:1.0"


@pytest.mark.parametrize(
    ("fields", "workload_id", "match"),
    [
        ({}, "d" * 54, "at most 53 leave room for its scheduler Service"),
        ({}, "9lives", "must start with a letter"),
        ({}, "Bad_Name", "is not an RFC 1123 label"),
        ({"queue": "team-a"}, "dask-1", "Kueue does not admit DaskClusters"),
        ({"timeout": "2h"}, "dask-1", "--timeout does not apply"),
        ({"env": {"DASK_WORKER_NAME": "me"}}, "dask-1", "set by the Dask operator"),
        ({"env": {"TOKEN": "x"}, "secrets": ["TOKEN=s:k"]}, "dask-1", "TOKEN is given twice"),
        ({"volumes": ["emptydir:/workbench/scratch"]}, "dask-1", "is taken"),
        ({"volumes": ["emptydir:/data", "pvc/x:/data"]}, "dask-1", "is taken twice"),
        ({"labels": {"workbench.jupyter.org/id": "x"}}, "dask-1", "is set by workbench"),
    ],
)
def test_bad_input_is_a_spec_error(fields: dict[str, Any], workload_id: str, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        build(fields, workload_id=workload_id)


def test_longest_name_fits() -> None:
    cluster = build({}, workload_id="d" * 53)[0]
    assert cluster["spec"]["scheduler"]["service"]["selector"]["dask.org/cluster-name"] == "d" * 53


def test_dry_run_prints_the_dask_cluster(service: Service) -> None:
    docs = service.dry_run({"kind": "dask", "name": "gitops", "workers": 3, "adapt": "1:4"})
    assert [d["kind"] for d in docs] == ["NetworkPolicy", "DaskCluster", "DaskAutoscaler"]
    recorded = json.loads(docs[1]["metadata"]["annotations"]["workbench.jupyter.org/spec"])
    assert (recorded["kind"], recorded["workers"], recorded["adapt"]) == (
        "dask",
        3,
        {"minimum": 1, "maximum": 4},
    )
    for doc in docs[1:]:
        assert_crd_valid(doc)
    for doc in docs:
        assert check_manifest(doc) == []


def test_importing_the_builders_does_not_import_kubernetes() -> None:
    code = (
        "import sys, workbench.backends.kubernetes.dask_manifests; "
        "assert 'kubernetes' not in sys.modules, 'kubernetes was imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
