"""Contract tests of the pod manifests: strict schema validation for every supported
Kubernetes version, our own policy checks on every document, and the object rules of
DESIGN.md (labels, Kueue, GPUs, secrets by reference, names, payload size)."""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import ValidationError, all_versions

from workbench.backends.kubernetes.manifests import (
    QUEUE_LABEL,
    KubeSettings,
    Toleration,
    build_pod_manifests,
    owner_label,
    with_owner,
)
from workbench.backends.kubernetes.policy import check_hardened, check_manifest, check_restricted
from workbench.errors import SpecError
from workbench.spec import PodSpec, parse_spec
from workbench.units import check_label

MINORS = range(29, 38)
SCRIPT = b"import sys\nprint('training', sys.argv[1:])\nmodel = 42\n"

# name -> (spec fields, KubeSettings fields)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "plain": ({"code": "print('hi')"}, {}),
    "gpu": (
        {
            "code": "import torch",
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
    "mig": (
        {"code": "import torch", "resources": {"gpus": 1, "gpu_type": "NVIDIA-A100-SXM4-40GB"}},
        {"gpu_resource": "nvidia.com/mig-1g.10gb"},
    ),
    "queue": (
        {
            "code": "print(1)",
            "queue": "team-a",
            "priority_class": "high-priority",
            "resources": {"cpu": "500m", "memory": "512Mi"},
        },
        {},
    ),
    "secrets_volumes": (
        {
            "code": "print(1)",
            "env": {"B_VAR": "2", "A_VAR": "1"},
            "secrets": ["HF_TOKEN=hf-token:token", "DB_PASSWORD=db-creds:password"],
            "volumes": [
                "pvc/data:/data:ro",
                "configmap/settings:/etc/settings",
                "secret/tls:/etc/tls:ro",
                "emptydir:/scratch",
            ],
            "labels": {"team": "ml", "example.com/project": "llm"},
            "node_selector": {"pool": "cpu"},
        },
        {},
    ),
    "timeout_retries": (
        {
            "script": "train.py",
            "args": ["--epochs", "3"],
            "timeout": "1h30m",
            "retries": 3,
            "get": ["model"],
        },
        {"namespace": "research", "ttl_seconds_after_finished": 600},
    ),
    "account": (
        {"code": "print(1)", "image": "registry.example.com/ml/workbench:1.0"},
        {"service_account": "workbench-runner", "image_pull_secrets": ("regcred", "mirror-cred")},
    ),
}


def _pod_spec(fields: dict[str, Any]) -> PodSpec:
    spec = parse_spec({"kind": "pod", **fields})
    assert isinstance(spec, PodSpec)
    return spec


def build(
    fields: dict[str, Any],
    *,
    workload_id: str = "wl-1",
    inputs: bytes | None = b"\x80\x05inputs",
    owner: str = "Ada Lovelace",
    **settings: Any,
) -> list[dict[str, Any]]:
    spec = _pod_spec(fields)
    code: str | bytes = SCRIPT if spec.script else (spec.code or "")
    entry = "train.py" if spec.script else "cell.py"
    return build_pod_manifests(
        workload_id,
        spec,
        code=code,
        entry_name=entry,
        inputs=inputs,
        owner=owner,
        settings=KubeSettings(**settings),
    )


def build_case(name: str, server_version: tuple[int, int] = (1, 33)) -> list[dict[str, Any]]:
    fields, settings = CASES[name]
    return build(fields, **settings, server_version=server_version)


def pod_of(job: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = job["spec"]["template"]["spec"]
    return pod


def container_of(job: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = pod_of(job)["containers"][0]
    return container


def env_of(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container_of(job)["env"]}


def _latest_patch() -> dict[int, str]:
    """The newest bundled schema version of each 1.x minor, e.g. {33: "1.33.0"}."""
    latest: dict[int, tuple[int, str]] = {}
    for version in all_versions():
        major, minor, patch = (int(part) for part in version.split("."))
        if major == 1 and patch >= latest.get(minor, (-1, ""))[0]:
            latest[minor] = (patch, version)
    return {minor: version for minor, (_, version) in latest.items()}


BUNDLED = _latest_patch()


# -- contract: strict schemas for every supported version, our own checks ------------------------------


def test_every_supported_version_is_bundled() -> None:
    assert set(MINORS) <= set(BUNDLED), f"kubernetes-validate lacks {set(MINORS) - set(BUNDLED)}"


@pytest.mark.parametrize("minor", MINORS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_manifests_validate_strictly_and_pass_policy(case: str, minor: int) -> None:
    docs = build_case(case, server_version=(1, minor))
    assert [doc["kind"] for doc in docs] == ["ConfigMap", "Job"]
    for doc in docs:
        # returns the schema version it used: it must be this one, not an older fallback
        assert kubernetes_validate.validate(doc, BUNDLED[minor], strict=True) == f"1.{minor}"
        assert check_manifest(doc) == []
    assert check_restricted(pod_of(docs[1])) == []


def test_strict_validation_is_live() -> None:
    job = build_case("plain")[1]
    container_of(job)["gpus"] = 1  # not a field of a container
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(job, BUNDLED[33], strict=True)


def test_version_gated_fields() -> None:
    old = build_case("plain", server_version=(1, 25))[1]
    assert "podFailurePolicy" not in old["spec"]
    kubernetes_validate.validate(old, BUNDLED[25], strict=True)
    new = build_case("plain", server_version=(1, 29))[1]
    rules = new["spec"]["podFailurePolicy"]["rules"]
    assert {"type": "DisruptionTarget", "status": "True"} in rules[1]["onPodConditions"]
    assert rules[0]["onExitCodes"] == {"containerName": "main", "operator": "In", "values": [3]}
    for job in (old, new):
        assert not {"successPolicy", "backoffLimitPerIndex", "completionMode"} & set(job["spec"])


# -- determinism ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_input_same_dicts(case: str) -> None:
    first, second = build_case(case), build_case(case)
    assert first == second
    assert json.dumps(first) == json.dumps(second)  # same key order too
    first[0]["metadata"]["labels"]["x"] = "y"  # no dict shared between objects or calls
    assert "x" not in first[1]["metadata"]["labels"]
    assert "x" not in pod_of(first[1]) and "x" not in second[0]["metadata"]["labels"]


# -- labels and names -----------------------------------------------------------------------------------


def test_labels_on_every_object_and_the_pod_template() -> None:
    fields, settings = CASES["secrets_volumes"]
    configmap, job = build(fields, workload_id="nb-7", owner="Jane.Doe@Example.COM", **settings)
    expected = {
        "app.kubernetes.io/name": "jupyter-ml-workbench",
        "app.kubernetes.io/managed-by": "jupyter-ml-workbench",
        "app.kubernetes.io/component": "pod",
        "workbench.jupyter.org/id": "nb-7",
        "workbench.jupyter.org/kind": "pod",
        "workbench.jupyter.org/owner": "jane.doe-example.com",
        "team": "ml",
        "example.com/project": "llm",
    }
    for labels in (
        configmap["metadata"]["labels"],
        job["metadata"]["labels"],
        job["spec"]["template"]["metadata"]["labels"],
    ):
        assert labels == expected
    assert job["metadata"]["annotations"] == {"workbench.jupyter.org/owner": "Jane.Doe@Example.COM"}
    assert (configmap["metadata"]["name"], job["metadata"]["name"]) == ("nb-7-payload", "nb-7")


@pytest.mark.parametrize(
    ("owner", "label"),
    [
        ("ada", "ada"),
        ("Ada Lovelace", "ada-lovelace"),
        ("Jane.Doe@Example.COM", "jane.doe-example.com"),
        ("__svc_account__", "svc_account"),
        ("DOMAIN\\Émile", "domain--mile"),
        ("", "unknown"),
        ("@@@", "unknown"),
        ("a" * 100, "a" * 63),
        ("b" * 62 + "-c", "b" * 62),
    ],
)
def test_owner_label(owner: str, label: str) -> None:
    assert owner_label(owner) == label
    check_label("workbench.jupyter.org/owner", label)


@pytest.mark.parametrize("key", ["workbench.jupyter.org/id", "app.kubernetes.io/managed-by", QUEUE_LABEL])
def test_reserved_labels_are_refused(key: str) -> None:
    with pytest.raises(SpecError, match="set by workbench"):
        build({"code": "1", "labels": {key: "mine"}})


def test_too_long_or_bad_names_are_refused() -> None:
    long_id = "w" * 64
    with pytest.raises(SpecError) as info:
        build({"code": "1"}, workload_id=long_id)
    assert "64 characters" in info.value.message and "at most 63" in info.value.message
    assert long_id in info.value.message and info.value.value == long_id
    build({"code": "1"}, workload_id="w" * 63)
    with pytest.raises(SpecError, match="RFC 1123"):
        build({"code": "1"}, workload_id="Bad_Name")


def test_bad_settings_are_refused() -> None:
    for bad, match in [
        (lambda: KubeSettings(gpu_resource="gpu"), "extended resource"),
        (lambda: KubeSettings(gpu_resource="kubernetes.io/gpu"), "extended resource"),
        (lambda: KubeSettings(gpu_node_label="bad label"), "invalid gpu_node_label"),
        (lambda: KubeSettings(namespace="Team_A"), "RFC 1123"),
        (lambda: KubeSettings(max_configmap_bytes=2_000_000), "at most 1048576"),
        (lambda: KubeSettings(runtime_uid=0), "runtime_uid 0 must be at least 1"),
        (lambda: KubeSettings(default_cpu="lots"), "invalid default_cpu"),
        (lambda: KubeSettings(default_memory="4 gigs"), "invalid default_memory"),
        (lambda: KubeSettings(client_labels=(("bad key!", "x"),)), "invalid client_labels"),
        (lambda: KubeSettings(dask_operator_namespace="Dask_Op"), "RFC 1123"),
        (lambda: Toleration("nvidia.com/gpu", value="x"), "operator Exists and a value"),
    ]:
        with pytest.raises(SpecError, match=match):
            bad()


# -- Kueue, GPUs, pod settings ---------------------------------------------------------------------------


def test_kueue_queue_suspends_the_job() -> None:
    job = build_case("queue")[1]
    assert job["metadata"]["labels"][QUEUE_LABEL] == "team-a"
    assert job["spec"]["suspend"] is True
    assert QUEUE_LABEL not in job["spec"]["template"]["metadata"]["labels"]
    assert pod_of(job)["priorityClassName"] == "high-priority"
    plain = build_case("plain")[1]
    assert "suspend" not in plain["spec"] and QUEUE_LABEL not in plain["metadata"]["labels"]
    assert "priorityClassName" not in pod_of(plain)


def test_gpus_limits_tolerations_node_selector_and_shm() -> None:
    job = build_case("gpu")[1]
    pod, container = pod_of(job), container_of(job)
    amounts = {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "2"}
    assert container["resources"] == {"requests": amounts, "limits": amounts}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}} in pod["volumes"]
    assert {"name": "shm", "mountPath": "/dev/shm"} in container["volumeMounts"]


def test_mig_resource_and_shm_without_size() -> None:
    job = build_case("mig")[1]
    limits = container_of(job)["resources"]["limits"]
    amounts = {"cpu": "500m", "memory": "1Gi", "nvidia.com/mig-1g.10gb": "1"}
    assert limits == amounts == container_of(job)["resources"]["requests"]
    assert {"name": "shm", "emptyDir": {"medium": "Memory"}} in pod_of(job)["volumes"]


def test_no_gpus_no_gpu_scheduling() -> None:
    job = build_case("plain")[1]
    pod = pod_of(job)
    assert not {"tolerations", "nodeSelector"} & set(pod)
    assert set(container_of(job)["resources"]["limits"]) == {"cpu", "memory"}
    assert all(volume["name"] != "shm" for volume in pod["volumes"])
    custom = build(CASES["gpu"][0], gpu_tolerations=(), gpu_node_label="example.com/gpu")[1]
    assert "tolerations" not in pod_of(custom)
    assert pod_of(custom)["nodeSelector"] == {"example.com/gpu": "NVIDIA-A100-SXM4-80GB"}
    with pytest.raises(SpecError, match="contradicts"):
        build({**CASES["gpu"][0], "node_selector": {"nvidia.com/gpu.product": "NVIDIA-H100"}})


def test_restricted_security_settings() -> None:
    pod = pod_of(build_case("plain")[1])
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    assert "serviceAccountName" not in pod and "imagePullSecrets" not in pod
    assert check_hardened(pod) == []


def test_hardened_beyond_restricted() -> None:
    """Read-only root with /tmp and HOME writable, requests and limits, pull policy by tag."""
    job = build_case("plain")[1]
    pod, container = pod_of(job), container_of(job)
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert mounts["/tmp"] == "tmp" and volumes["tmp"] == {"name": "tmp", "emptyDir": {}}
    assert mounts["/home/workbench"] == "home" and volumes["home"] == {"name": "home", "emptyDir": {}}
    assert env_of(job)["HOME"] == {"name": "HOME", "value": "/home/workbench"}
    # the runner writes its run directory and outputs: emptyDirs too
    assert (
        volumes[mounts["/workbench/run"]]["emptyDir"] == volumes[mounts["/workbench/run/outputs"]]["emptyDir"]
    )
    defaults = {"cpu": "500m", "memory": "1Gi"}
    assert container["resources"] == {"requests": defaults, "limits": defaults}
    assert env_of(job)["OMP_NUM_THREADS"]["value"] == "1"  # from the CPU limit, not the host's cores
    other = container_of(build({"code": "1"}, default_cpu="2", default_memory="3Gi")[1])
    assert other["resources"]["limits"] == {"cpu": "2", "memory": "3Gi"}
    given = container_of(build({"code": "1", "resources": {"memory": "8Gi"}})[1])
    assert given["resources"]["requests"] == {"cpu": "500m", "memory": "8Gi"} == given["resources"]["limits"]
    assert container["imagePullPolicy"] == "Always"  # ghcr.io/...:<version>: a tag can move
    digest = "registry.example.com/ml/workbench@sha256:" + "a" * 64
    assert container_of(build({"code": "1", "image": digest})[1])["imagePullPolicy"] == "IfNotPresent"
    assert pod_of(build({"code": "1"}, runtime_uid=20000)[1])["securityContext"]["runAsUser"] == 20000


def test_service_account_and_pull_secrets() -> None:
    job = build_case("account")[1]
    pod = pod_of(job)
    assert pod["serviceAccountName"] == "workbench-runner"
    assert pod["automountServiceAccountToken"] is False  # no workload talks to the API
    assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror-cred"}]
    assert container_of(job)["image"] == "registry.example.com/ml/workbench:1.0"


def test_job_timeout_retries_and_ttl() -> None:
    configmap, job = build_case("timeout_retries")
    spec = job["spec"]
    assert (spec["activeDeadlineSeconds"], spec["backoffLimit"], spec["ttlSecondsAfterFinished"]) == (
        5400,
        3,
        600,
    )
    assert (spec["completions"], spec["parallelism"]) == (1, 1)
    assert configmap["metadata"]["namespace"] == job["metadata"]["namespace"] == "research"
    assert build({"code": "1", "timeout": 90.2})[1]["spec"]["activeDeadlineSeconds"] == 91
    assert build({"code": "1", "timeout": 0.01})[1]["spec"]["activeDeadlineSeconds"] == 1
    plain = build_case("plain")[1]["spec"]
    assert "activeDeadlineSeconds" not in plain and plain["backoffLimit"] == 0
    assert "ttlSecondsAfterFinished" not in build({"code": "1"}, ttl_seconds_after_finished=None)[1]["spec"]


# -- payload ---------------------------------------------------------------------------------------------


def test_payload_configmap_and_how_the_runner_finds_it() -> None:
    configmap, job = build_case("timeout_retries")
    assert configmap["immutable"] is True
    assert configmap["data"]["train.py"] == SCRIPT.decode()  # UTF-8 bytes travel as text
    meta = json.loads(configmap["data"]["meta.json"])
    assert meta == {"entry": "train.py", "argv0": "train.py", "args": ["--epochs", "3"], "get": ["model"]}
    assert base64.b64decode(configmap["binaryData"]["inputs.pkl"]) == b"\x80\x05inputs"
    container, pod = container_of(job), pod_of(job)
    assert container["command"] == [
        "python",
        "-m",
        "workbench.runtime.cell",
        "/workbench/run",
        "--results-to-log",
    ]
    assert {"name": "payload", "configMap": {"name": "wl-1-payload"}} in pod["volumes"]
    assert {"name": "payload", "mountPath": "/workbench/run/payload", "readOnly": True} in container[
        "volumeMounts"
    ]
    binary = build_pod_manifests(
        "wl-2",
        _pod_spec({"code": "1"}),
        code=b"\xff\xfe not utf-8",
        entry_name="cell.py",
        inputs=None,
        owner="x",
        settings=KubeSettings(),
    )[0]
    assert base64.b64decode(binary["binaryData"]["cell.py"]) == b"\xff\xfe not utf-8"
    assert set(binary["binaryData"]) == {"cell.py"} and "cell.py" not in binary["data"]
    no_inputs = build({"code": "1"}, inputs=None)[0]
    assert "binaryData" not in no_inputs


def test_payload_too_large_is_a_spec_error() -> None:
    with pytest.raises(SpecError) as info:
        build({"code": "1"}, inputs=b"x" * 1_000_001)
    message = info.value.one_line()
    assert "1000000 bytes" in message and "--send" in message and "volume" in message
    with pytest.raises(SpecError, match="at most 2048 bytes"):
        build({"code": "1"}, inputs=b"x" * 2000, max_configmap_bytes=2048)
    build({"code": "1"}, inputs=b"x" * 1500, max_configmap_bytes=2048)


@pytest.mark.parametrize("entry", ["meta.json", "inputs.pkl", "my script.py", ".."])
def test_bad_entry_names_are_refused(entry: str) -> None:
    with pytest.raises(SpecError):
        build_pod_manifests(
            "wl-1",
            _pod_spec({"code": "1"}),
            code="1",
            entry_name=entry,
            inputs=None,
            owner="x",
            settings=KubeSettings(),
        )


# -- env, secrets, volumes -------------------------------------------------------------------------------


def test_secrets_only_by_reference_and_env_sorted() -> None:
    configmap, job = build_case("secrets_volumes")
    env = env_of(job)
    names = [entry["name"] for entry in container_of(job)["env"]]
    assert names == sorted(names)
    assert env["HF_TOKEN"] == {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}},
    }
    assert env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "db-creds", "key": "password"}
    assert env["A_VAR"] == {"name": "A_VAR", "value": "1"}
    assert env["WORKBENCH_WORKLOAD_ID"] == {"name": "WORKBENCH_WORKLOAD_ID", "value": "wl-1"}
    assert not [entry for entry in container_of(job)["env"] if "value" in entry and "valueFrom" in entry]
    # the secret is named only where it is referenced, never copied into a value or the payload
    assert "hf-token" not in json.dumps(configmap)
    assert json.dumps(job).count('"hf-token"') == 1
    assert not [entry for entry in env.values() if "secret" in str(entry.get("value", "")).lower()]


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"env": {"HF_TOKEN": "x"}, "secrets": ["HF_TOKEN=hf-token:token"]}, "given twice"),
        ({"secrets": ["T=a:b", "T=c:d"]}, "given twice"),
        ({"env": {"WORKBENCH_RUN_DIR": "/tmp"}}, "set by workbench"),
        ({"volumes": ["pvc/a:/data", "pvc/b:/data/"]}, "'/data/' is taken twice"),
        ({"volumes": ["pvc/a:/workbench/run/x"]}, "overlaps /workbench/run or /dev/shm"),
        ({"volumes": ["pvc/a:/workbench:ro"]}, "overlaps /workbench/run, which"),
        ({"volumes": ["pvc/a:/"]}, "overlaps /workbench/run or /dev/shm or /tmp or /home/workbench"),
        ({"volumes": ["emptydir:/tmp"]}, "overlaps /tmp, which workbench mounts"),
        ({"volumes": ["pvc/a:/home"]}, "overlaps /home/workbench, which workbench mounts"),
        ({"volumes": ["emptydir:/dev/shm"]}, "which workbench mounts"),
    ],
)
def test_contradictions_are_spec_errors(fields: dict[str, Any], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        build({"code": "1", **fields})


def test_a_volume_may_go_below_tmp_or_home() -> None:
    mounts = container_of(build({"code": "1", "volumes": ["pvc/spill:/tmp/spill"]})[1])["volumeMounts"]
    assert {"name": "volume-0", "mountPath": "/tmp/spill", "readOnly": False} in mounts


def test_volumes_and_mounts() -> None:
    job = build_case("secrets_volumes")[1]
    volumes = {volume["name"]: volume for volume in pod_of(job)["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container_of(job)["volumeMounts"]}
    assert volumes["volume-0"]["persistentVolumeClaim"] == {"claimName": "data", "readOnly": True}
    assert volumes["volume-1"]["configMap"] == {"name": "settings"}
    assert volumes["volume-2"]["secret"] == {"secretName": "tls"}
    assert volumes["volume-3"]["emptyDir"] == {}
    assert mounts["/data"] == {"name": "volume-0", "mountPath": "/data", "readOnly": True}
    assert mounts["/etc/settings"]["readOnly"] is False and mounts["/etc/tls"]["readOnly"] is True
    assert pod_of(job)["nodeSelector"] == {"pool": "cpu"}


def test_with_owner_makes_the_payload_owned_by_the_job() -> None:
    configmap, job = build_case("plain")
    owned = with_owner(configmap, job, "0f6f7c58-5bde-4d5f-9a3e-2f1d0c9b8a7e")
    assert owned["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "wl-1",
            "uid": "0f6f7c58-5bde-4d5f-9a3e-2f1d0c9b8a7e",
        }
    ]
    assert "ownerReferences" not in configmap["metadata"]
    kubernetes_validate.validate(owned, BUNDLED[33], strict=True)


def test_importing_the_builders_does_not_import_kubernetes() -> None:
    code = (
        "import sys, workbench.backends.kubernetes.manifests, workbench.backends.kubernetes.policy; "
        "assert 'kubernetes' not in sys.modules, 'kubernetes was imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# -- the policy checks catch what they are for ------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _container(job: dict[str, Any]) -> dict[str, Any]:
    return container_of(job)


def _set(*path: str, value: Any) -> Mutation:
    """A mutation of the Job setting ``path`` under ``c`` (container), ``p`` (pod spec) or ``j`` (Job)."""

    def mutate(job: dict[str, Any]) -> None:
        head, *rest = path
        node: Any = {"c": container_of(job), "p": pod_of(job), "j": job}[head]
        for part in rest[:-1]:
            node = node.setdefault(part, {})
        if value is _DELETE:
            del node[rest[-1]]
        else:
            node[rest[-1]] = value

    return mutate


_DELETE = object()
RESTRICTED_BAD: list[tuple[str, Mutation, str]] = [
    (
        "pod root",
        _set("p", "securityContext", "runAsUser", value=0),
        "securityContext.runAsUser must not be 0 (root)",
    ),
    (
        "container root",
        _set("c", "securityContext", "runAsUser", value=0),
        "container 'main': securityContext.runAsUser must not be 0 (root)",
    ),
    (
        "privileged",
        _set("c", "securityContext", "privileged", value=True),
        "securityContext.privileged must not be true",
    ),
    (
        "escalation",
        _set("c", "securityContext", "allowPrivilegeEscalation", value=_DELETE),
        "container 'main': securityContext.allowPrivilegeEscalation must be false",
    ),
    (
        "cap add",
        _set("c", "securityContext", "capabilities", "add", value=["SYS_ADMIN", "NET_BIND_SERVICE"]),
        "capabilities.add may hold only NET_BIND_SERVICE, not ['SYS_ADMIN']",
    ),
    (
        "cap drop",
        _set("c", "securityContext", "capabilities", "drop", value=["NET_RAW"]),
        "capabilities.drop must include ALL",
    ),
    (
        "non-root off",
        _set("c", "securityContext", "runAsNonRoot", value=False),
        "securityContext.runAsNonRoot must be true (here or in the pod's securityContext)",
    ),
    (
        "seccomp unconfined",
        _set("p", "securityContext", "seccompProfile", "type", value="Unconfined"),
        "securityContext.seccompProfile.type 'Unconfined' must be RuntimeDefault or Localhost",
    ),
    (
        "seccomp missing",
        _set("p", "securityContext", "seccompProfile", value=_DELETE),
        "container 'main': securityContext.seccompProfile.type must be RuntimeDefault or Localhost "
        "(here or in the pod's securityContext)",
    ),
    ("host network", _set("p", "hostNetwork", value=True), "hostNetwork must not be true"),
    ("host pid", _set("p", "hostPID", value=True), "hostPID must not be true"),
    (
        "host port",
        _set("c", "ports", value=[{"containerPort": 80, "hostPort": 8080}]),
        "hostPort 8080 must not be set",
    ),
    (
        "host path",
        lambda job: pod_of(job)["volumes"].append({"name": "host", "hostPath": {"path": "/"}}),
        "volume 'host' is a hostPath volume; restricted allows only configMap, csi,",
    ),
    (
        "sysctl",
        _set("p", "securityContext", "sysctls", value=[{"name": "kernel.msgmax", "value": "1"}]),
        "'kernel.msgmax' is not a safe sysctl",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [c[1:] for c in RESTRICTED_BAD], ids=[c[0] for c in RESTRICTED_BAD]
)
def test_check_restricted_catches(mutate: Mutation, expected: str) -> None:
    job = copy.deepcopy(build_case("gpu")[1])
    mutate(job)
    problems = check_restricted(pod_of(job))
    assert len(problems) == 1 and expected in problems[0], problems
    # and check_manifest reports it too, saying where
    assert any(f"Job/wl-1: spec.template.spec: {problems[0]}" == p for p in check_manifest(job))


GPU = "nvidia.com/gpu"
MANIFEST_BAD: list[tuple[str, Mutation, str]] = [
    (
        "bad quantity",
        _set("c", "resources", "requests", "cpu", value="4 gigs"),
        "requests.cpu: '4 gigs' is not a quantity",
    ),
    (
        "int quantity",
        _set("c", "resources", "limits", "cpu", value=8),
        "must be a string (quantities are written as strings)",
    ),
    (
        "medium case",
        lambda job: next(v for v in pod_of(job)["volumes"] if v["name"] == "shm")["emptyDir"].update(
            medium="memory"
        ),
        "volume 'shm' emptyDir.medium 'memory' must be '' or 'Memory' (exact case)",
    ),
    (
        "gpu request != limit",
        _set("c", "resources", "requests", GPU, value="1"),
        f"{GPU} request '1' must equal its limit '2'",
    ),
    (
        "gpu only requested",
        _set("c", "resources", "limits", GPU, value=_DELETE),
        f"{GPU} must be set in limits (it is only in requests)",
    ),
    (
        "request above limit",
        _set("c", "resources", "requests", "memory", value="65Gi"),
        "memory request '65Gi' is above its limit",
    ),
    (
        "bad label",
        _set("j", "metadata", "labels", "team", value="has space"),
        "metadata.labels: label value 'has space' for 'team'",
    ),
    (
        "bad template label",
        _set("j", "spec", "template", "metadata", "labels", "team", value="-x"),
        "spec.template.metadata.labels: label value '-x'",
    ),
    (
        "long job name",
        _set("j", "metadata", "name", value="j" * 64),
        "metadata.name '" + "j" * 64 + "' is 64 characters; at most 63",
    ),
    (
        "value and valueFrom",
        lambda job: container_of(job)["env"].append(
            {"name": "X", "value": "v", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
        ),
        "variable 'X' has both value and valueFrom",
    ),
    (
        "secret ref without key",
        lambda job: container_of(job)["env"].append(
            {"name": "X", "valueFrom": {"secretKeyRef": {"name": "s"}}}
        ),
        "variable 'X' secretKeyRef needs both name and key",
    ),
    (
        "queue without suspend",
        _set("j", "metadata", "labels", QUEUE_LABEL, value="q"),
        "must be created with spec.suspend true",
    ),
    (
        "mount of no volume",
        _set("c", "volumeMounts", value=[{"name": "nope", "mountPath": "/x"}]),
        "'nope' names no volume",
    ),
    (
        "restart always",
        _set("p", "restartPolicy", value="Always"),
        "restartPolicy 'Always' must be Never or OnFailure",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [c[1:] for c in MANIFEST_BAD], ids=[c[0] for c in MANIFEST_BAD]
)
def test_check_manifest_catches(mutate: Mutation, expected: str) -> None:
    job = copy.deepcopy(build_case("gpu")[1])
    mutate(job)
    problems = check_manifest(job)
    assert len(problems) == 1 and expected in problems[0], problems
    assert check_restricted(pod_of(job)) == []  # none of these is a Pod Security matter


@pytest.mark.parametrize("value", ["0.5", "1500m"])
def test_check_manifest_catches_fractional_gpus(value: str) -> None:
    job = copy.deepcopy(build_case("gpu")[1])
    amounts = {"cpu": "1", "memory": "1Gi", GPU: value}
    container_of(job)["resources"] = {"requests": dict(amounts), "limits": dict(amounts)}
    where = "Job/wl-1: spec.template.spec: container 'main' resources"
    assert check_manifest(job) == [
        f"{where}.requests.{GPU} '{value}' must be a whole number",
        f"{where}.limits.{GPU} '{value}' must be a whole number",
    ]


def test_check_manifest_catches_configmap_problems() -> None:
    configmap = copy.deepcopy(build_case("plain")[0])
    configmap["binaryData"]["cell.py"] = "not base64!"
    configmap["data"]["bad key"] = "x"
    problems = check_manifest(configmap)
    assert "ConfigMap/wl-1-payload: binaryData 'cell.py' is not valid base64" in problems
    assert "ConfigMap/wl-1-payload: key 'cell.py' is in both data and binaryData" in problems
    assert any("key 'bad key' must be letters" in p for p in problems)
    assert len(problems) == 3
    big = copy.deepcopy(build_case("plain")[0])
    big["data"]["big.txt"] = "x" * (1024 * 1024)
    assert any("a ConfigMap holds at most 1048576" in p for p in check_manifest(big))


HARDENED_BAD: list[tuple[str, Mutation, str]] = [
    (
        "writable root",
        _set("c", "securityContext", "readOnlyRootFilesystem", value=False),
        "container 'main': securityContext.readOnlyRootFilesystem must be true",
    ),
    (
        "low uid",
        _set("p", "securityContext", "runAsUser", value=1000),
        "container 'main': securityContext.runAsUser 1000 must be at least 10000",
    ),
    (
        "low container gid",
        _set("c", "securityContext", "runAsGroup", value=1000),
        "securityContext.runAsGroup 1000 must be at least 10000",
    ),
    ("low fsGroup", _set("p", "securityContext", "fsGroup", value=100), "fsGroup 100 must be at least 10000"),
    (
        "token mounted",
        _set("p", "automountServiceAccountToken", value=_DELETE),
        "automountServiceAccountToken must be false",
    ),
    (
        "no memory limit",
        _set("c", "resources", "limits", "memory", value=_DELETE),
        "container 'main': resources.limits must set memory",
    ),
    (
        "no requests",
        _set("c", "resources", "requests", value=_DELETE),
        "container 'main': resources.requests must set cpu and memory",
    ),
    (
        "tag not pulled",
        _set("c", "imagePullPolicy", value="IfNotPresent"),
        "imagePullPolicy 'IfNotPresent' must be Always for image 'ghcr.io/jupyter-ml-workbench/runtime:",
    ),
    (
        "digest pulled always",
        _set("c", "image", value="example.com/wb@sha256:" + "0" * 64),
        "imagePullPolicy 'Always' must be IfNotPresent for image 'example.com/wb@sha256:",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [c[1:] for c in HARDENED_BAD], ids=[c[0] for c in HARDENED_BAD]
)
def test_check_hardened_catches(mutate: Mutation, expected: str) -> None:
    job = copy.deepcopy(build_case("gpu")[1])
    mutate(job)
    problems = check_hardened(pod_of(job))
    assert len(problems) == 1 and expected in problems[0], problems
    assert check_restricted(pod_of(job)) == []  # restricted alone lets each of them pass
    assert check_manifest(job) == [f"Job/wl-1: spec.template.spec: {problems[0]}"]


def test_check_restricted_finds_pod_specs_in_other_kinds() -> None:
    pod = pod_of(build_case("plain")[1])
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": copy.deepcopy(pod)}}}},
    }
    assert check_manifest(cron) == []
    cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["hostIPC"] = True
    assert check_manifest(cron) == [
        "CronJob/nightly: spec.jobTemplate.spec.template.spec: hostIPC must not be true"
    ]
