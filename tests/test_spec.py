"""Spec models: one-line validation errors for bad input, round trips and JSON Schema."""

from __future__ import annotations

from typing import Any

import pytest

from workbench.errors import SpecError
from workbench.spec import KINDS, MODELS, AdaptRange, SecretRef, Volume, json_schema, parse_spec

POD: dict[str, Any] = {"kind": "pod", "code": "x = 1"}
DASK: dict[str, Any] = {"kind": "dask"}
TRAIN: dict[str, Any] = {"kind": "train", "code": "import torch"}
NOTEBOOK: dict[str, Any] = {"kind": "notebook", "notebook": "analysis.ipynb"}
SERVE: dict[str, Any] = {"kind": "serve", "code": "def predict(inputs):\n    return inputs"}


def _error(data: dict[str, Any]) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    return info.value


# Each row: a bad spec and words its one-line message must contain (the flag or field, the
# bad value as the user wrote it, and the words that say what to write instead).
BAD: list[Any] = [
    # -- resources ---------------------------------------------------------------------------
    # -- serve -------------------------------------------------------------------------------
    pytest.param(
        {**SERVE, "replicas": 0}, ["--replicas", "0", "greater than or equal to 1"], id="serve-replicas-0"
    ),
    pytest.param({**SERVE, "replicas": "two"}, ["--replicas", "'two'", "integer"], id="serve-replicas-text"),
    pytest.param(
        {**SERVE, "autoscale": "4:2"}, ["--autoscale", "MIN above MAX", "2:5"], id="serve-min-above-max"
    ),
    pytest.param(
        {**SERVE, "autoscale": "0:3"},
        ["--autoscale", "at least one replica", "1:3"],
        id="serve-scale-to-zero",
    ),
    pytest.param(
        {**SERVE, "replicas": 5, "autoscale": "1:3"},
        ["replicas 5", "above the autoscale maximum 3"],
        id="serve-replicas-above-max",
    ),
    pytest.param({**SERVE, "get": ["y"]}, ["--get", "does not apply to serve"], id="serve-get"),
    pytest.param(
        {**SERVE, "model_name": "my model"}, ["--model-name", "'my model'", "iris-v1"], id="serve-name"
    ),
    pytest.param({**SERVE, "max_body": "lots"}, ["--max-body", "'lots'", "16Mi"], id="serve-max-body"),
    pytest.param(
        {**SERVE, "operator": "seldon"}, ["--operator", "'seldon'", "'kserve'"], id="serve-operator"
    ),
    pytest.param({**SERVE, "port": 80}, ["--port", "80", "1024"], id="serve-port"),
    pytest.param(
        {**POD, "resources": {"memory": "4 gigs"}},
        ["--memory", "'4 gigs'", "is not a quantity", "4Gi"],
        id="memory-words",
    ),
    pytest.param(
        {**POD, "resources": {"memory": "4"}},
        ["--memory", "'4'", "under 1Mi", "512Mi or 4Gi"],
        id="memory-without-unit",
    ),
    pytest.param(
        {**DASK, "resources": {"shm": "lots"}}, ["--shm", "'lots'", "is not a quantity"], id="shm-words"
    ),
    pytest.param(
        {**POD, "resources": {"cpu": "two"}}, ["--cpu", "'two'", "is not a quantity", "500m"], id="cpu-words"
    ),
    pytest.param(
        {**POD, "resources": {"cpu": 0}}, ["--cpu", "0 is less than 1m", "500m or 2"], id="cpu-zero"
    ),
    pytest.param(
        {**TRAIN, "resources": {"gpus": -1}},
        ["--gpus", "-1 is negative", "0 or more GPUs"],
        id="gpus-negative",
    ),
    pytest.param(
        {**POD, "resources": {"gpus": 1.5}},
        ["--gpus", "1.5 is not a whole number", "GPUs are not shared"],
        id="gpus-fraction",
    ),
    pytest.param(
        {**POD, "resources": {"gpus": "abc"}},
        ["--gpus", "'abc' is not a whole number of GPUs", "0, 1, 2"],
        id="gpus-text",
    ),
    pytest.param(
        {**POD, "resources": {"gpus": True}}, ["--gpus", "True is not a number of GPUs"], id="gpus-bool"
    ),
    pytest.param(
        {**POD, "resources": {"gpu_type": "NVIDIA-A100"}},
        ["--gpu-type", "'NVIDIA-A100'", "needs --gpus 1 or more"],
        id="gpu-type-without-gpus",
    ),
    # -- names, image, env, labels -----------------------------------------------------------
    pytest.param(
        {**POD, "name": "MyJob"}, ["--name", "'MyJob'", "lower-case", "RFC 1123", "my-job-1"], id="name-upper"
    ),
    pytest.param({**DASK, "name": "my_job"}, ["--name", "'my_job'", "lower-case"], id="name-underscore"),
    pytest.param(
        {**TRAIN, "name": "a" * 41}, ["--name", "is 41 characters", "at most 40"], id="name-too-long"
    ),
    pytest.param({**NOTEBOOK, "name": "-job"}, ["--name", "'-job'", "starting and ending"], id="name-dash"),
    pytest.param({**POD, "image": "python 3"}, ["--image", "'python 3'", "without spaces"], id="image-space"),
    pytest.param(
        {**POD, "env": {"1X": "a"}},
        ["--env", "'1X'", "not starting with a digit"],
        id="env-name-digit",
    ),
    pytest.param({**DASK, "env": ["A"]}, ["--env", "'A'", "KEY=VALUE"], id="env-item-without-equals"),
    pytest.param(
        {**POD, "labels": {"team": "x" * 64}},
        ["--label", "label value 'xxxx", "for 'team'", "at most 63"],
        id="label-value-too-long",
    ),
    pytest.param(
        {**TRAIN, "labels": {"team": "a b"}}, ["--label", "'a b'", "letters, digits"], id="label-value-chars"
    ),
    pytest.param(
        {**POD, "labels": {"te am": "ml"}},
        ["--label", "label key 'te am'", "at most 63"],
        id="label-key-chars",
    ),
    pytest.param(
        {**POD, "labels": {"Bad_Prefix/team": "ml"}},
        ["--label", "'Bad_Prefix/team'", "invalid prefix", "example.com/team"],
        id="label-key-prefix",
    ),
    pytest.param(
        {**POD, "node_selector": ["zone=a b"]}, ["--node-selector", "'a b'"], id="node-selector-value"
    ),
    pytest.param({**POD, "queue": "Team_A"}, ["--queue", "'Team_A'", "team-a"], id="queue-name"),
    # -- secrets and volumes -----------------------------------------------------------------
    pytest.param(
        {**POD, "secrets": ["TOKEN"]},
        ["--secret", "'TOKEN'", "ENV=SECRET:KEY", "TOKEN=hf-token:token"],
        id="secret-no-ref",
    ),
    pytest.param(
        {**POD, "secrets": ["TOKEN=Bad_Name:token"]},
        ["--secret", "secret name 'Bad_Name'", "DNS name", "hf-token"],
        id="secret-name",
    ),
    pytest.param(
        {**DASK, "secrets": ["1X=hf-token:token"]},
        ["--secret", "'1X'", "not a valid variable name"],
        id="secret-env-name",
    ),
    pytest.param(
        {**POD, "secrets": ["TOKEN=hf-token:to/ken"]},
        ["--secret", "'to/ken'", "letters, digits"],
        id="secret-key",
    ),
    pytest.param(
        {**POD, "volumes": ["pvc/data:data"]},
        ["--volume", "'data'", "must be absolute"],
        id="volume-relative",
    ),
    pytest.param(
        {**POD, "volumes": ["pvc/data:/a/../etc"]},
        ["--volume", "'/a/../etc'", "without '..'"],
        id="volume-dotdot",
    ),
    pytest.param(
        {**TRAIN, "volumes": ["emptydir/x:/scratch"]},
        ["--volume", "emptydir volume takes no name", "emptydir:/scratch"],
        id="volume-emptydir-with-name",
    ),
    pytest.param(
        {**POD, "volumes": ["pvc:/data"]},
        ["--volume", "pvc volume needs a DNS name", "pvc/data:/data"],
        id="volume-pvc-without-name",
    ),
    pytest.param(
        {**POD, "volumes": ["nfs/x:/data"]},
        ["--volume", "volumes.type", "'pvc', 'configmap', 'secret' or 'emptydir'"],
        id="volume-unknown-type",
    ),
    pytest.param(
        {**POD, "volumes": ["pvc/data:/data:rx"]}, ["--volume", "'rx'", "ro or rw"], id="volume-mode"
    ),
    pytest.param({**POD, "volumes": ["pvc/data"]}, ["--volume", "TYPE[/NAME]:MOUNT"], id="volume-no-mount"),
    # -- timeouts, backend, code ---------------------------------------------------------------
    pytest.param(
        {**POD, "timeout": "soon"},
        ["--timeout", "'soon' is not a duration", "30s, 5m, 1h30m"],
        id="timeout-words",
    ),
    pytest.param({**POD, "timeout": -5}, ["--timeout", "-5", "positive duration"], id="timeout-negative"),
    pytest.param({**NOTEBOOK, "timeout": 0}, ["--timeout", "0", "positive duration"], id="timeout-zero"),
    pytest.param({**POD, "backend": "cloud"}, ["--backend", "'local' or 'kubernetes'"], id="backend-unknown"),
    pytest.param({**POD, "script": "train.py"}, ["exactly one of code", "or script"], id="code-and-script"),
    pytest.param({"kind": "pod"}, ["exactly one of code", "or script"], id="neither-code-nor-script"),
    pytest.param({"kind": "train"}, ["exactly one of code", "or script"], id="train-neither"),
    pytest.param(
        {"kind": "pod", "script": "run.sh"}, ["script 'run.sh'", "must be a .py file"], id="script-not-py"
    ),
    pytest.param(
        {**POD, "send": ["1a"]},
        ["--send", "variable '1a'", "not a Python variable name"],
        id="send-not-identifier",
    ),
    pytest.param({**TRAIN, "get": "ok,1a"}, ["--get", "'1a'", "not a Python variable name"], id="get-text"),
    pytest.param({**POD, "retries": 11}, ["--retries", "less than or equal to 10"], id="retries-too-many"),
    # -- dask ------------------------------------------------------------------------------------
    pytest.param({**DASK, "workers": 0}, ["--workers", "greater than or equal to 1"], id="dask-workers-zero"),
    pytest.param(
        {**DASK, "adapt": "5:2"}, ["--adapt", "adapt 5:2", "MIN above MAX", "2:5"], id="dask-adapt-order"
    ),
    pytest.param({**DASK, "adapt": "x"}, ["--adapt", "adapt 'x'", "MIN:MAX", "1:8"], id="dask-adapt-text"),
    pytest.param({**DASK, "threads": 0}, ["--threads", "greater than or equal to 1"], id="dask-threads-zero"),
    pytest.param(
        {**DASK, "idle_timeout": "never"}, ["--idle-timeout", "'never' is not a duration"], id="dask-idle"
    ),
    pytest.param({**DASK, "code": "x"}, ["invalid code", "is not a field of this kind"], id="dask-code"),
    # -- train -----------------------------------------------------------------------------------
    pytest.param({**TRAIN, "nodes": 0}, ["--nodes", "greater than or equal to 1"], id="train-nodes-zero"),
    pytest.param(
        {**TRAIN, "procs_per_node": 0},
        ["--procs-per-node", "greater than or equal to 1"],
        id="train-procs-zero",
    ),
    pytest.param(
        {**TRAIN, "max_restarts": -1},
        ["--max-restarts", "greater than or equal to 0"],
        id="train-restarts-negative",
    ),
    pytest.param({**TRAIN, "operator": "mpi"}, ["--operator", "'job' or 'kubeflow'"], id="train-operator"),
    # -- notebook ----------------------------------------------------------------------------------
    pytest.param(
        {"kind": "notebook", "notebook": "analysis.py"},
        ["notebook 'analysis.py'", "must be an .ipynb file"],
        id="notebook-not-ipynb",
    ),
    pytest.param(
        {**NOTEBOOK, "code": "x"}, ["invalid code", "is not a field of this kind"], id="notebook-code"
    ),
    # -- unknown fields ----------------------------------------------------------------------------
    pytest.param({**POD, "gpu": 1}, ["invalid gpu", "is not a field of this kind"], id="extra-field-gpu"),
    pytest.param(
        {**POD, "resources": {"gpu": 1}},
        ["resources.gpu", "is not a field of this kind"],
        id="extra-nested-field",
    ),
]


@pytest.mark.parametrize(("data", "words"), BAD)
def test_bad_spec_is_a_one_line_spec_error(data: dict[str, Any], words: list[str]) -> None:
    exc = _error(data)
    line = exc.one_line()
    assert str(exc) == line
    assert "\n" not in line
    assert line.startswith("invalid ")
    for word in words:
        assert word in line, f"{word!r} missing from {line!r}"
    assert f"see `workbench schema {data['kind']}` for every field" in line
    assert exc.hint is not None


def test_validation_table_is_large_and_covers_every_kind() -> None:
    assert len(BAD) >= 25
    kinds = {param.values[0]["kind"] for param in BAD}
    assert kinds == set(KINDS)


@pytest.mark.parametrize(
    ("data", "value"),
    [
        ({**POD, "resources": {"memory": "4 gigs"}}, "4 gigs"),
        ({**POD, "resources": {"gpus": 1.5}}, 1.5),
        ({**POD, "name": "MyJob"}, "MyJob"),
        ({**POD, "timeout": "soon"}, "soon"),
        ({**DASK, "adapt": "x"}, "x"),
        ({**TRAIN, "operator": "mpi"}, "mpi"),
        ({**DASK, "workers": 0}, 0),
    ],
)
def test_spec_error_carries_the_bad_value(data: dict[str, Any], value: Any) -> None:
    assert _error(data).value == value


def test_several_problems_are_counted_in_one_line() -> None:
    line = _error({**POD, "name": "Bad_Name", "timeout": "soon", "gpu": 1}).one_line()
    assert "(and 2 more problems)" in line
    assert "\n" not in line
    one_more = _error({**POD, "name": "Bad_Name", "timeout": "soon"}).one_line()
    assert "(and 1 more problem)" in one_more


@pytest.mark.parametrize(
    ("data", "value"),
    [
        pytest.param({**DASK, "workers": 0}, "0", id="workers"),
        pytest.param({**DASK, "threads": 0}, "0", id="threads"),
        pytest.param({**TRAIN, "nodes": 0}, "0", id="nodes"),
        pytest.param({**TRAIN, "max_restarts": -1}, "-1", id="max-restarts"),
        pytest.param({**POD, "retries": 11}, "11", id="retries"),
        pytest.param({**POD, "backend": "cloud"}, "'cloud'", id="backend"),
        pytest.param({**TRAIN, "operator": "mpi"}, "'mpi'", id="operator"),
        pytest.param({**POD, "volumes": ["nfs/x:/data"]}, "'nfs'", id="volume-type"),
    ],
)
def test_range_and_choice_errors_name_the_bad_value(data: dict[str, Any], value: str) -> None:
    line = _error(data).one_line()
    # strip the hint so "0" in "schema" text etc. cannot satisfy the check by accident
    message = line.split(" — ")[0]
    assert value in message.split(":", 1)[1]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"kind": "notebook"}, id="missing"),
        pytest.param({"kind": "notebook", "notebook": "analysis.py"}, id="not-ipynb"),
    ],
)
def test_notebook_field_errors_name_the_field(data: dict[str, Any]) -> None:
    # the field `notebook` shares its name with the kind tag; it must still be named
    assert _error(data).one_line().startswith("invalid notebook")


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        ({"kind": "job", "code": "x"}, "'job'"),
        ({"code": "x"}, "None"),
        ({"kind": "POD", "code": "x"}, "'POD'"),
    ],
)
def test_unknown_kind(data: dict[str, Any], shown: str) -> None:
    exc = _error(data)
    line = exc.one_line()
    assert f"unknown kind {shown}" in line
    assert "choose one of pod, dask, train, notebook" in line
    assert "set kind:" in line
    assert exc.value == data.get("kind")


@pytest.mark.parametrize("kind", [["pod"], {"pod": 1}, 1])
def test_non_text_kind_is_a_spec_error(kind: Any) -> None:
    line = _error({"kind": kind, "code": "x"}).one_line()
    assert f"unknown kind {kind!r}" in line


# -- valid specs ----------------------------------------------------------------------------------

VALID: list[dict[str, Any]] = [
    {
        "kind": "pod",
        "name": "my-job-1",
        "image": "python:3.11",
        "code": "y = x * 2",
        "env": {"A": "1"},
        "secrets": ["TOKEN=hf-token:token"],
        "volumes": ["pvc/data:/data:ro", "emptydir:/scratch"],
        "resources": {"cpu": "500m", "memory": "4Gi", "gpus": 1, "gpu_type": "NVIDIA-A100", "shm": "1Gi"},
        "timeout": "1h30m",
        "labels": {"team": "ml", "example.com/owner": "ada"},
        "backend": "kubernetes",
        "queue": "team-a",
        "priority_class": "high",
        "node_selector": {"zone": "a"},
        "send": "x",
        "get": ["y"],
        "retries": 2,
    },
    {
        "kind": "dask",
        "name": "cluster",
        "workers": 4,
        "threads": 2,
        "adapt": "1:5",
        "idle_timeout": "30m",
        "keep": True,
        "resources": {"cpu": 2, "memory": "8Gi"},
    },
    {
        "kind": "train",
        "script": "train.py",
        "args": ["--epochs", "3"],
        "nodes": 2,
        "procs_per_node": 4,
        "max_restarts": 3,
        "operator": "kubeflow",
        "resources": {"gpus": "4"},
    },
    {
        "kind": "notebook",
        "notebook": "reports/analysis.ipynb",
        "parameters": {"alpha": 0.5, "n": 3, "tags": ["a"]},
        "output": "s3://bucket/runs",
        "kernel": "python3",
        "schedule": "0 3 * * *",
        "strict": True,
    },
]


@pytest.mark.parametrize("data", VALID, ids=[d["kind"] for d in VALID])
@pytest.mark.parametrize("mode", ["python", "json"])
def test_valid_spec_round_trips(data: dict[str, Any], mode: str) -> None:
    spec = parse_spec(data)
    assert type(spec) is MODELS[data["kind"]]
    dumped = spec.model_dump(mode=mode)
    assert dumped["kind"] == data["kind"]
    again = parse_spec(dumped)
    assert again == spec
    assert again.model_dump(mode=mode) == dumped


def test_valid_pod_fields_are_normalised() -> None:
    spec = parse_spec(VALID[0])
    assert spec.timeout == 5400.0
    assert spec.resources.gpus == 1
    assert spec.resources.cpu == "500m"
    assert spec.send == ["x"]
    assert spec.volumes[1] == Volume(type="emptydir", source=None, mount_path="/scratch", read_only=False)


def test_env_labels_and_node_selector_accept_k_v_lists() -> None:
    spec = parse_spec(
        {**POD, "env": ["A=1", "B=x=y", "C="], "labels": ["team=ml", "tier=gpu"], "node_selector": ["zone=a"]}
    )
    assert spec.env == {"A": "1", "B": "x=y", "C": ""}
    assert spec.labels == {"team": "ml", "tier": "gpu"}
    assert spec.node_selector == {"zone": "a"}


def test_adapt_text_parses_into_a_range() -> None:
    spec = parse_spec({**DASK, "adapt": "1:5"})
    assert spec.adapt == AdaptRange(minimum=1, maximum=5)
    assert parse_spec({**DASK, "adapt": {"minimum": 0, "maximum": 3}}).adapt == AdaptRange(
        minimum=0, maximum=3
    )


@pytest.mark.parametrize(
    ("text", "seconds"), [("1h30m", 5400.0), ("90", 90.0), (90, 90.0), ("30s", 30.0), ("2d", 172800.0)]
)
def test_durations_become_seconds(text: Any, seconds: float) -> None:
    assert parse_spec({**POD, "timeout": text}).timeout == seconds
    assert parse_spec({**DASK, "idle_timeout": text}).idle_timeout == seconds


def test_dask_idle_timeout_defaults_to_an_hour_and_may_be_unset() -> None:
    assert parse_spec(DASK).idle_timeout == 3600.0
    assert parse_spec({**DASK, "idle_timeout": None}).idle_timeout is None


def test_volume_text_parses() -> None:
    spec = parse_spec({**POD, "volumes": ["pvc/data:/data:ro", "configmap/cfg:/etc/cfg:rw"]})
    first, second = spec.volumes
    assert (first.type, first.source, first.mount_path, first.read_only) == ("pvc", "data", "/data", True)
    assert (second.type, second.source, second.mount_path, second.read_only) == (
        "configmap",
        "cfg",
        "/etc/cfg",
        False,
    )


def test_secret_text_parses() -> None:
    spec = parse_spec({**POD, "secrets": ["TOKEN=hf-token:token"]})
    assert spec.secrets == [SecretRef(env="TOKEN", secret="hf-token", key="token")]


def test_spec_is_frozen() -> None:
    spec = parse_spec(POD)
    with pytest.raises(ValueError, match="frozen"):
        spec.name = "other"  # type: ignore[misc]


# -- JSON Schema ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_json_schema_has_properties_and_flags(kind: str) -> None:
    schema = json_schema(kind)
    assert isinstance(schema, dict)
    props = schema["properties"]
    assert props["name"]["x-flag"] == "--name"
    assert "RFC 1123" in props["name"]["x-help"]
    assert props["env"]["x-flag"] == "--env"
    assert props["env"]["x-metavar"] == "K=V"
    assert props["kind"]["const"] == kind or props["kind"].get("enum") == [kind]
    resources = schema["$defs"]["Resources"]["properties"]
    assert resources["gpus"]["x-flag"] == "--gpus"
    assert resources["memory"]["x-flag"] == "--memory"


@pytest.mark.parametrize(
    ("kind", "field", "flag"),
    [
        ("pod", "retries", "--retries"),
        ("dask", "workers", "--workers"),
        ("dask", "adapt", "--adapt"),
        ("train", "procs_per_node", "--procs-per-node"),
        ("notebook", "output", "--output"),
    ],
)
def test_json_schema_kind_specific_flags(kind: str, field: str, flag: str) -> None:
    assert json_schema(kind)["properties"][field]["x-flag"] == flag


def test_json_schema_keeps_store_true_action() -> None:
    assert json_schema("dask")["properties"]["keep"]["action"] == "store_true"
    assert "notebook" in json_schema("notebook")["required"]


def test_json_schema_unknown_kind() -> None:
    with pytest.raises(SpecError, match="unknown kind 'cloud'; choose one of pod, dask, train, notebook"):
        json_schema("cloud")
