"""Contract tests of the `serve` manifests: Deployment + Service (+ PDB, HPA), and KServe's
InferenceService.

Every built-in document is validated strictly for each supported Kubernetes version and
passes our Pod Security *restricted* and hardening checks. The InferenceService is checked
against KServe's published typed models (the ``kserve`` package): every key must be a field
of its model, recursively, and KServe's own ApiClient must read it back; its predictor's pod
is validated as a Pod too.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import kubernetes_validate
import pytest

from workbench.backends.kubernetes.hardening import pod_specs
from workbench.backends.kubernetes.policy import check_hardened, check_manifest, check_restricted
from workbench.backends.kubernetes.serve_manifests import (
    SERVE_PORT,
    build_serve_manifests,
    inference_service,
)
from workbench.backends.kubernetes.serve_revision import Revision, read_revision, revision_configmap
from workbench.backends.kubernetes.serve_status import canary_replicas
from workbench.backends.kubernetes.settings import KubeSettings
from workbench.errors import Conflict, NotFound, SpecError
from workbench.service import Service
from workbench.spec import ServeSpec, parse_spec

from .test_manifests import BUNDLED, MINORS

MODEL = "def predict(x):\n    return x * 2\n"
CASES: dict[str, dict[str, Any]] = {
    "one": {"code": MODEL},
    "replicas": {"code": MODEL, "replicas": 3, "model_name": "iris", "model_uri": "s3://bucket/iris"},
    "autoscale": {"code": MODEL, "autoscale": "2:6", "target_concurrency": 8},
    "gpu": {
        "script": "model.py",
        "args": ["--size", "large"],
        "resources": {"gpus": 1, "gpu_type": "NVIDIA-L4", "cpu": "4", "memory": "16Gi"},
        "secrets": ["HF_TOKEN=hf:token"],
        "volumes": ["pvc/models:/models:ro"],
        "env": {"MODEL_DTYPE": "fp16"},
        "max_body": "64Mi",
    },
    "kserve": {"code": MODEL, "operator": "kserve", "replicas": 2},
    "kserve_autoscale": {"code": MODEL, "operator": "kserve", "autoscale": "1:5"},
}


def spec_of(fields: dict[str, Any]) -> ServeSpec:
    spec = parse_spec({"kind": "serve", **fields})
    assert isinstance(spec, ServeSpec)
    return spec


def build(fields: dict[str, Any], *, workload_id: str = "iris", **settings: Any) -> list[dict[str, Any]]:
    spec = spec_of(fields)
    return build_serve_manifests(
        workload_id,
        spec,
        code=b"def predict(x):\n    return x\n" if spec.script else (spec.code or ""),
        entry_name="model.py" if spec.script else "cell.py",
        inputs=b"\x80\x05\x95inputs",
        owner="Ada",
        settings=KubeSettings(**settings),
    )


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in docs}


def as_pod(template: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", **template.get("metadata", {})},
        "spec": template["spec"],
    }


# -- strict schemas, Pod Security, hardening ---------------------------------------------------------------


@pytest.mark.parametrize("minor", MINORS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_manifests_validate_strictly_and_pass_policy(case: str, minor: int) -> None:
    docs = build(CASES[case], server_version=(1, minor))
    for doc in docs:
        if doc["kind"] != "InferenceService":  # no CRD schema offline: see the KServe test below
            assert kubernetes_validate.validate(doc, BUNDLED[minor], strict=True) == f"1.{minor}"
        assert check_manifest(doc) == []
        for _, pod in pod_specs(doc.get("spec")):
            assert check_restricted(pod) == [] and check_hardened(pod) == []
    pods = [pod for doc in docs for _, pod in pod_specs(doc.get("spec"))]
    assert len(pods) == 1


def test_objects_and_their_order() -> None:
    kinds = {case: [d["kind"] for d in build(fields)] for case, fields in CASES.items()}
    assert kinds["one"] == ["ConfigMap", "Service", "Deployment"]  # no PDB for one replica
    assert kinds["replicas"] == ["ConfigMap", "Service", "Deployment", "PodDisruptionBudget"]
    assert kinds["autoscale"] == [
        "ConfigMap", "Service", "Deployment", "PodDisruptionBudget", "HorizontalPodAutoscaler",
    ]  # fmt: skip
    assert kinds["kserve"] == ["ConfigMap", "InferenceService"]


def test_deployment_rolls_out_without_losing_capacity() -> None:
    deployment = by_kind(build(CASES["replicas"], server_version=(1, 33)))["Deployment"]
    spec = deployment["spec"]
    assert spec["replicas"] == 3 and spec["revisionHistoryLimit"] == 10
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
    }
    assert spec["selector"]["matchLabels"] == {
        "workbench.jupyter.org/id": "iris",
        "workbench.jupyter.org/track": "stable",
    }
    template = spec["template"]
    assert spec["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    assert template["metadata"]["annotations"] == {"workbench.jupyter.org/model-uri": "s3://bucket/iris"}
    pod = template["spec"]
    assert pod["restartPolicy"] == "Always" and pod["automountServiceAccountToken"] is False
    container = pod["containers"][0]
    assert container["command"] == [
        "python", "-m", "workbench.runtime.serve_replica", "/workbench/run/payload",
        "--host", "$(WORKBENCH_BIND_HOST)", "--port", "8080",
    ]  # fmt: skip
    env = {e["name"]: e for e in container["env"]}
    assert env["WORKBENCH_BIND_HOST"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert [e["name"] for e in container["env"]] == sorted(env)
    assert container["ports"] == [{"name": "http", "containerPort": SERVE_PORT, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= spec["progressDeadlineSeconds"]
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert pod["terminationGracePeriodSeconds"] > 5
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    payload = next(v for v in pod["volumes"] if v["name"] == "payload")
    assert payload == {"name": "payload", "configMap": {"name": "iris-r1"}}
    notes = deployment["metadata"]["annotations"]
    assert (
        notes["kubernetes.io/change-cause"] == "serve cell"
        and notes["workbench.jupyter.org/generation"] == "1"
    )


def test_the_prestop_pause_needs_no_feature_gate_before_1_30() -> None:
    old = by_kind(build(CASES["one"], server_version=(1, 29)))["Deployment"]
    hook = old["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["preStop"]
    assert hook == {"exec": {"command": ["sleep", "5"]}}


def test_the_revision_configmap_is_what_the_replica_reads() -> None:
    configmap = build(CASES["replicas"])[0]
    assert configmap["metadata"]["name"] == "iris-r1" and configmap["immutable"] is True
    assert configmap["data"]["cell.py"] == MODEL
    assert base64.b64decode(configmap["binaryData"]["inputs.pkl"]) == b"\x80\x05\x95inputs"
    meta = json.loads(configmap["data"]["meta.json"])
    assert meta == {
        "entry": "cell.py",
        "argv0": "cell",
        "args": [],
        "model_name": "iris",
        "model_uri": "s3://bucket/iris",
        "env": {},
        "max_body": 16 * 1024 * 1024,
    }
    back = read_revision(configmap, "img:1")
    assert (back.number, back.code, back.entry, back.inputs, back.model_uri, back.image) == (
        1, MODEL, "cell.py", b"\x80\x05\x95inputs", "s3://bucket/iris", "img:1",
    )  # fmt: skip
    script = by_kind(build(CASES["gpu"]))["ConfigMap"]
    assert json.loads(script["data"]["meta.json"])["args"] == ["--size", "large"]
    assert json.loads(script["data"]["meta.json"])["env"] == {"MODEL_DTYPE": "fp16"}
    binary = revision_configmap(
        "iris", spec_of(CASES["one"]), Revision(7, b"\xff\xfe", "m.py"), {}, KubeSettings()
    )
    assert binary["metadata"]["name"] == "iris-r7" and "m.py" in binary["binaryData"]
    assert read_revision(binary, None).code == b"\xff\xfe"


def test_service_hpa_and_pdb() -> None:
    docs = by_kind(build(CASES["autoscale"]))
    service = docs["Service"]["spec"]
    assert service["type"] == "ClusterIP" and service["selector"] == {"workbench.jupyter.org/id": "iris"}
    assert service["ports"] == [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]
    hpa = docs["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "iris"}
    assert docs["Deployment"]["spec"]["replicas"] == 2  # starts at the floor
    assert docs["PodDisruptionBudget"]["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": {"workbench.jupyter.org/id": "iris"}},
    }
    assert "PodDisruptionBudget" in by_kind(build({"code": MODEL, "autoscale": "1:3"}))
    assert "PodDisruptionBudget" not in by_kind(build({"code": MODEL, "autoscale": "1:1"}))


def test_same_input_same_dicts() -> None:
    for fields in CASES.values():
        assert build(fields) == build(fields)


# -- KServe ---------------------------------------------------------------------------------------------


def _model(type_name: str) -> Any:
    """KServe's typed model of that name, or the Kubernetes one it refers to (V1Container…)."""
    import kserve.models
    import kubernetes.client.models

    return getattr(kserve.models, type_name, None) or getattr(kubernetes.client.models, type_name, None)


def typed(data: Any, type_name: str, problems: list[str], path: str = "") -> Any:
    """``data`` deserialized into KServe's typed models through their ``openapi_types``, every
    unknown key added to ``problems``; the models' constructors check required fields."""
    if data is None:
        return None
    if type_name.startswith("list["):
        return [typed(item, type_name[5:-1], problems, f"{path}[{i}]") for i, item in enumerate(data)]
    if type_name.startswith("dict("):
        inner = type_name[5:-1].split(", ", 1)[1]
        return {k: typed(v, inner, problems, f"{path}.{k}") for k, v in data.items()}
    model = _model(type_name)
    if model is None or not getattr(model, "openapi_types", None):  # str, int, object, quantities
        return data
    if not isinstance(data, dict):
        problems.append(f"{path}: {data!r} is not an object ({type_name})")
        return None
    fields = {json_key: attr for attr, json_key in model.attribute_map.items()}
    problems += [f"{path}.{key}: no such field in {type_name}" for key in data if key not in fields]
    kwargs = {
        fields[key]: typed(value, model.openapi_types[fields[key]], problems, f"{path}.{key}")
        for key, value in data.items()
        if key in fields
    }
    return model(**kwargs)


@pytest.mark.parametrize("case", ["kserve", "kserve_autoscale"])
def test_inference_service_matches_kserves_typed_models(case: str) -> None:
    from kserve import ApiClient, V1beta1InferenceService

    isvc = by_kind(build(CASES[case]))["InferenceService"]
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    problems: list[str] = []
    model = typed(isvc, "V1beta1InferenceService", problems)
    assert problems == []
    assert isinstance(model, V1beta1InferenceService)
    assert model.spec.predictor.containers[0].name == "kserve-container"
    assert model.spec.predictor.containers[0].security_context.run_as_non_root is True
    assert ApiClient().sanitize_for_serialization(model) == isvc  # nothing lost on the way
    bad = json.loads(json.dumps(isvc))
    bad["spec"]["predictor"]["containers"][0]["gpus"] = 1
    bad["spec"]["predictor"]["canaryPercent"] = 5
    typed(bad, "V1beta1InferenceService", problems)
    assert problems == [
        ".spec.predictor.canaryPercent: no such field in V1beta1PredictorSpec",
        ".spec.predictor.containers[0].gpus: no such field in V1Container",
    ]
    with pytest.raises(ValueError, match="name"):  # a container must have a name
        del bad["spec"]["predictor"]["containers"][0]["name"]
        typed(bad, "V1beta1InferenceService", [])


def test_the_predictor_runs_the_same_replica_as_a_valid_restricted_pod() -> None:
    isvc = by_kind(build(CASES["kserve_autoscale"]))["InferenceService"]
    predictor = isvc["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 5)
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("concurrency", 4)
    assert predictor["labels"]["workbench.jupyter.org/id"] == "iris"
    assert "canaryTrafficPercent" not in predictor
    assert predictor["deploymentStrategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": 0}
    kserve_only = ("minReplicas", "maxReplicas", "scaleMetric", "scaleTarget", "labels", "deploymentStrategy")
    pod_fields = {k: v for k, v in predictor.items() if k not in kserve_only}
    for minor in MINORS:
        kubernetes_validate.validate(as_pod({"spec": pod_fields}), BUNDLED[minor], strict=True)
    container = predictor["containers"][0]
    assert container["command"][:4] == [
        "python",
        "-m",
        "workbench.runtime.serve_replica",
        "/workbench/run/payload",
    ]
    assert {"name": "WORKBENCH_BIND_HOST", "value": "0.0.0.0"} in container["env"]  # Knative's queue-proxy
    assert "lifecycle" not in container and container["readinessProbe"]["httpGet"]["port"] == SERVE_PORT
    assert check_restricted(pod_fields) == [] and check_hardened(pod_fields) == []
    spec = spec_of(CASES["kserve"])
    template = by_kind(build(CASES["one"]))["Deployment"]["spec"]["template"]
    canary = inference_service("iris", spec, template, {}, KubeSettings(), annotations={}, canary=20)
    assert canary["spec"]["predictor"]["canaryTrafficPercent"] == 20


def test_the_kserve_network_policy_admits_knative() -> None:
    policy = build_policy("kserve")
    knative = ["knative-serving", "istio-system"]
    names = {"key": "kubernetes.io/metadata.name", "operator": "In", "values": knative}
    assert policy["spec"]["ingress"][-1] == {"from": [{"namespaceSelector": {"matchExpressions": [names]}}]}


def build_policy(case: str) -> dict[str, Any]:
    from workbench.backends.kubernetes.serve_manifests import serve_network_policy
    from workbench.backends.kubernetes.settings import workload_labels

    labels = workload_labels("iris", "serve", "ada")
    return serve_network_policy("iris", labels, KubeSettings(), kserve=case == "kserve")


def test_the_network_policy_admits_clients_on_the_serving_port_only() -> None:
    ingress = build_policy("one")["spec"]["ingress"]
    assert ingress[1] == {
        "from": [{"podSelector": {"matchLabels": {"workbench.jupyter.org/client": "true"}}}],
        "ports": [{"protocol": "TCP", "port": 8080}],
    }  # no Dask operator namespace


# -- canary splits ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stable", "percent", "pods"),
    [(4, 20, 1), (1, 50, 1), (3, 25, 1), (4, 50, 4), (2, 0, 0), (9, 10, 1), (1, 90, 9)],
)
def test_canary_replicas(stable: int, percent: int, pods: int) -> None:
    assert canary_replicas(stable, percent) == pods
    if pods:
        assert abs(100 * pods / (stable + pods) - percent) <= 10


def test_a_split_replica_counts_cannot_carry_is_refused_in_one_line() -> None:
    with pytest.raises(SpecError) as caught:
        canary_replicas(1, 20)
    message = f"{caught.value} ({caught.value.hint})"
    assert "\n" not in message
    assert "--canary 20" in message and "50%" in message
    assert "--replicas 3" in message and "--operator kserve" in message


# -- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "workload_id", "words"),
    [
        ({"code": MODEL}, "9lives", "start with a letter"),
        ({"code": MODEL}, "x" * 64, "at most 63"),
        ({"code": MODEL, "timeout": "1h"}, "iris", "--timeout"),
        ({"code": "x" * 1_100_000}, "iris", None),
    ],
)
def test_bad_input_is_refused(fields: dict[str, Any], workload_id: str, words: str | None) -> None:
    try:
        spec = spec_of(fields)
    except SpecError:
        assert words is None  # the spec's own limit
        return
    with pytest.raises(SpecError) as caught:
        build_serve_manifests(
            workload_id, spec, code=spec.code or "", entry_name="cell.py", inputs=None, owner="a",
            settings=KubeSettings(),
        )  # fmt: skip
    assert words is None or words in str(caught.value)


def test_the_bind_address_is_workbenchs_even_past_the_spec() -> None:
    spec = spec_of({"code": MODEL}).model_copy(update={"env": {"WORKBENCH_BIND_HOST": "0.0.0.0"}})
    with pytest.raises(SpecError, match="WORKBENCH_BIND_HOST"):
        build_serve_manifests(
            "iris", spec, code=MODEL, entry_name="cell.py", inputs=None, owner="a", settings=KubeSettings()
        )


# -- --dry-run and export ---------------------------------------------------------------------------------


def test_dry_run_prints_the_objects_and_creates_nothing(service: Service) -> None:
    docs = service.dry_run(
        {"kind": "serve", "code": MODEL, "name": "iris", "replicas": 2, "backend": "kubernetes"}
    )
    assert [d["kind"] for d in docs] == [
        "NetworkPolicy",
        "ConfigMap",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
    ]
    spec = json.loads(docs[3]["metadata"]["annotations"]["workbench.jupyter.org/spec"])
    assert spec["kind"] == "serve" and spec["replicas"] == 2 and "code" not in spec
    kserve = service.dry_run({"kind": "serve", "code": MODEL, "name": "iris", "operator": "kserve"})
    assert [d["kind"] for d in kserve] == ["NetworkPolicy", "ConfigMap", "InferenceService"]
    assert "workbench.jupyter.org/spec" in kserve[2]["metadata"]["annotations"]
    assert service.store.list() == []


# -- reading a rollout as kubectl does (pure) ------------------------------------------------------------


def _deployment(generation: int = 2, observed: int = 2, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "iris", "uid": "u1", "generation": generation},
        "spec": {"replicas": 2, "progressDeadlineSeconds": 300},
        "status": {"observedGeneration": observed, **status},
    }


@pytest.mark.parametrize(
    ("deployment", "phase", "words"),
    [
        (_deployment(3, 2), "progressing", "to see the change"),
        (_deployment(updatedReplicas=1, replicas=3, availableReplicas=2), "progressing", "1 of 2 new"),
        (_deployment(updatedReplicas=2, replicas=3, availableReplicas=2), "progressing", "1 old replicas"),
        (_deployment(updatedReplicas=2, replicas=2, availableReplicas=1), "progressing", "1 of 2 updated"),
        (_deployment(updatedReplicas=2, replicas=2, availableReplicas=2), "complete", ""),
        (
            _deployment(
                conditions=[{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
            ),
            "failed",
            "not ready within 300s (ProgressDeadlineExceeded)",
        ),
    ],
)
def test_progress_reads_a_deployment_as_kubectl_rollout_status(
    deployment: dict[str, Any], phase: str, words: str
) -> None:
    from workbench.backends.kubernetes.serve_status import progress

    found = progress(deployment)
    assert found[0] == phase and words in found[1]


def _pod(
    exit_code: int | None, restarts: int = 0, message: str = "", reason: str = "Error"
) -> dict[str, Any]:
    ended = {"exitCode": exit_code, "reason": reason, **({"message": message} if message else {})}
    status = {"name": "main", "restartCount": restarts, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
    status["lastState"] = {"terminated": ended} if exit_code is not None else {}
    return {"metadata": {"name": "p"}, "status": {"containerStatuses": [status]}}


def test_a_container_that_keeps_failing_and_why() -> None:
    from workbench.backends.kubernetes.serve_status import crash

    def why(pod: dict[str, Any]) -> str | None:
        found = crash([pod])
        return None if found is None else found[1]

    assert why(_pod(None)) is None
    assert why(_pod(1, restarts=1)) is None  # once may be bad luck
    assert (
        why(_pod(3, message="Traceback…\nValueError: weights are corrupt\n"))
        == "ValueError: weights are corrupt"
    )
    assert why(_pod(137, restarts=2, reason="OOMKilled")) == "OOMKilled (exit code 137)"
    assert why(_pod(3)) == ""  # no termination message: the caller reads the log


def _rs(revision: int, image: str, owner: str = "iris") -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"iris-{revision}",
            "annotations": {
                "deployment.kubernetes.io/revision": str(revision),
                "kubernetes.io/change-cause": f"c{revision}",
            },
            "labels": {"pod-template-hash": f"h{revision}"},
            "ownerReferences": [{"kind": "Deployment", "name": owner, "uid": "u1"}],
        },
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "x", "pod-template-hash": f"h{revision}"}},
                "spec": {"containers": [{"name": "main", "image": image}]},
            }
        },
    }


def test_undo_picks_and_copies_back_a_revision_as_kubectl_does() -> None:
    from workbench.backends.kubernetes.serve_status import replica_sets_of, rs_for_revision, undo_patch

    deployment = _deployment()
    deployment["metadata"]["annotations"] = {
        "workbench.jupyter.org/spec": "{}",
        "deployment.kubernetes.io/revision": "3",
    }
    owned = replica_sets_of(deployment, [_rs(3, "c"), _rs(1, "a"), _rs(2, "b"), _rs(9, "z", owner="other")])
    assert [rs["metadata"]["name"] for rs in owned] == ["iris-1", "iris-2", "iris-3"]
    assert rs_for_revision(owned, None)["metadata"]["name"] == "iris-2"  # the previous one
    assert rs_for_revision(owned, 1)["metadata"]["name"] == "iris-1"
    with pytest.raises(NotFound, match="unable to find revision 7"):
        rs_for_revision(owned, 7)
    with pytest.raises(Conflict, match="no previous revision"):
        rs_for_revision(owned[:1], None)
    patch = undo_patch(deployment, owned[0])
    assert patch["template"]["metadata"]["labels"] == {"app": "x"}  # without pod-template-hash
    assert patch["annotations"] == {"workbench.jupyter.org/spec": "{}", "kubernetes.io/change-cause": "c1"}


def test_traffic_follows_the_ready_pods() -> None:
    from workbench.backends.kubernetes.serve_status import traffic

    assert traffic({1: 4, 2: 1}) == {"1": 80, "2": 20}
    assert traffic({1: 2, 2: 1}) == {"1": 67, "2": 33}
    assert traffic({1: 0, 2: 3}) == {"2": 100}
    assert traffic({}) == {}
