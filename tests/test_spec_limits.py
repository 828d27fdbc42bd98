"""The documented limits every spec keeps, whatever front end it comes from.

Sizes of code, environment, parameters, labels and whole specs; no NUL bytes or broken text
in any string; no nesting deeper than MAX_DEPTH. Each refusal is one bounded line.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import ValidationError

from workbench.errors import SpecError
from workbench.spec import KINDS, PodSpec, parse_spec
from workbench.spec_limits import (
    MAX_CODE_BYTES,
    MAX_DEPTH,
    MAX_ENV_BYTES,
    MAX_ENV_VALUE_BYTES,
    MAX_LABELS,
    MAX_PARAMETERS_BYTES,
    MAX_SPEC_BYTES,
    MAX_TEXT,
)

POD: dict[str, Any] = {"kind": "pod", "code": "x = 1"}
NOTEBOOK: dict[str, Any] = {"kind": "notebook", "notebook": "analysis.ipynb"}
BASE: dict[str, dict[str, Any]] = {
    "pod": POD,
    "dask": {"kind": "dask"},
    "train": {"kind": "train", "code": "import torch"},
    "notebook": NOTEBOOK,
    "serve": {"kind": "serve", "code": "def predict(inputs):\n    return inputs\n"},
}


def _error(data: dict[str, Any]) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    line = info.value.one_line()
    assert "\n" not in line and len(line) < 1000, line
    assert len(str(info.value.to_dict())) < 2000
    return info.value


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def test_the_limits_are_what_the_readme_documents() -> None:
    assert MAX_CODE_BYTES == 1024 * 1024
    assert MAX_ENV_VALUE_BYTES == 32 * 1024
    assert MAX_ENV_BYTES == 256 * 1024
    assert MAX_PARAMETERS_BYTES == 256 * 1024
    assert MAX_LABELS == 64
    assert MAX_TEXT == 4096
    assert MAX_DEPTH == 32
    assert MAX_SPEC_BYTES == 4 * 1024 * 1024


# -- sizes ---------------------------------------------------------------------------------------
def test_code_up_to_the_limit_is_accepted_and_beyond_refused() -> None:
    assert PodSpec.model_validate({**POD, "code": "#" * MAX_CODE_BYTES}).code
    error = _error({**POD, "code": "#" * (MAX_CODE_BYTES + 1)})
    assert "invalid code: the code is 1.0MiB; at most 1MiB" in str(error)
    # counted in UTF-8 bytes, not characters
    assert "the code is 1.5MiB" in str(_error({**POD, "code": "é" * (MAX_CODE_BYTES * 3 // 4)}))
    assert "the code is 2MiB" in str(_error({"kind": "train", "code": "#" * 2 * 1024 * 1024}))
    # past the whole spec's limit, that one answers first
    assert "the spec is 5.0MiB" in str(_error({"kind": "train", "code": "#" * 5 * 1024 * 1024}))


def test_env_values_and_the_whole_env_are_bounded() -> None:
    assert parse_spec({**POD, "env": {"A": "x" * MAX_ENV_VALUE_BYTES}}).env
    error = _error({**POD, "env": {"BIG": "x" * (MAX_ENV_VALUE_BYTES + 1)}})
    assert str(error).startswith("invalid --env (env): the value of BIG is 32.0KiB; at most 32KiB")
    many = {f"V{i}": "x" * (MAX_ENV_VALUE_BYTES - 8) for i in range(MAX_ENV_BYTES // MAX_ENV_VALUE_BYTES + 1)}
    assert "invalid --env (env): the environment is" in str(_error({**NOTEBOOK, "env": many}))
    assert "at most 256KiB" in str(_error({"kind": "dask", "env": [f"{k}={v}" for k, v in many.items()]}))


def test_parameters_are_bounded() -> None:
    assert parse_spec({**NOTEBOOK, "parameters": {"text": "x" * (MAX_PARAMETERS_BYTES - 100)}})
    error = _error({**NOTEBOOK, "parameters": {"rows": ["x" * 1000] * 300}})
    assert "invalid parameters: the parameters (as JSON) is" in str(error) and "at most 256KiB" in str(error)


def test_labels_are_counted() -> None:
    labels = {f"l{i}": "v" for i in range(MAX_LABELS)}
    assert parse_spec({**POD, "labels": labels}).labels == labels
    error = _error({**POD, "labels": {**labels, "one-more": "v"}})
    assert "invalid --label (labels): 65 entries given; at most 64" in str(error)
    assert "at most 64" in str(_error({**POD, "node_selector": {**labels, "one-more": "v"}}))


def test_a_whole_spec_is_bounded() -> None:
    args = ["a" * 4000] * (MAX_SPEC_BYTES // 4000 + 10)
    error = _error({**POD, "args": args})
    assert str(error).startswith("invalid spec: the spec is 4.0MiB; at most 4MiB")
    assert error.value is None  # not megabytes of it in the error


def test_other_text_fields_are_bounded() -> None:
    assert "--image (image) is 5000 characters; at most 4096" in str(_error({**POD, "image": "i" * 5000}))
    assert "notebook is 5006 characters" in str(_error({**NOTEBOOK, "notebook": "n" * 5000 + ".ipynb"}))


def test_a_huge_bad_value_is_not_echoed() -> None:
    error = _error({**POD, "code": ["x" * 100_000]})
    assert len(error.one_line()) < 300
    error = _error({**POD, "resources": {"cpu": "x" * 3000}})
    assert len(str(error.value)) <= 100 and len(error.one_line()) < 1000


# -- NUL and broken text ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "where"),
    [
        pytest.param({**POD, "code": "print(1)\0"}, "code holds a NUL byte", id="code"),
        pytest.param({**POD, "env": {"A": "x\0y"}}, "--env (env['A']) holds a NUL byte", id="env-value"),
        pytest.param({**POD, "env": ["A=x\0y"]}, "--env (env[0]) holds a NUL byte", id="env-flag"),
        pytest.param({**POD, "args": ["ok", "a\0"]}, "args[1] holds a NUL byte", id="args"),
        pytest.param({**POD, "image": "python\0:3"}, "--image (image) holds a NUL byte", id="image"),
        pytest.param({**POD, "name": "a\0"}, "--name (name) holds a NUL byte", id="name"),
        pytest.param({**NOTEBOOK, "notebook": "a\0.ipynb"}, "notebook holds a NUL byte", id="notebook"),
        pytest.param({**NOTEBOOK, "output": "runs\0"}, "--output (output) holds a NUL byte", id="output"),
        pytest.param({**NOTEBOOK, "kernel": "py\0"}, "--kernel (kernel) holds a NUL byte", id="kernel"),
        pytest.param(
            {**NOTEBOOK, "parameters": {"a": {"b": ["ok", "\0"]}}},
            "parameters['a']['b'][1] holds a NUL byte",
            id="parameters-deep",
        ),
        pytest.param(
            {**NOTEBOOK, "parameters": {"a\0": 1}}, "parameters holds a NUL byte", id="parameter-name"
        ),
        pytest.param({**POD, "secrets": ["A=s:k\0"]}, "--secret (secrets[0]) holds a NUL byte", id="secret"),
        pytest.param({**POD, "volumes": ["pvc/d:/data\0"]}, "--volume (volumes[0]) holds", id="volume"),
        pytest.param(
            {**POD, "resources": {"memory": "1Gi\0"}}, "resources['memory'] holds a NUL byte", id="memory"
        ),
        pytest.param({**POD, "env": {"A": "\ud800"}}, "--env (env['A']) is not valid text", id="surrogate"),
        pytest.param({**POD, "code": "x = '\udfff'"}, "code is not valid text", id="surrogate-code"),
    ],
)
def test_nul_and_broken_text_are_refused_anywhere(data: dict[str, Any], where: str) -> None:
    error = _error(data)
    assert where in str(error), str(error)


def test_models_built_directly_keep_the_limits_too() -> None:
    with pytest.raises(ValidationError, match="NUL byte"):
        PodSpec(code="x\0")
    with pytest.raises(ValidationError, match="is set by workbench"):
        PodSpec(code="x", env={"CUDA_VISIBLE_DEVICES": "0"})
    with pytest.raises(ValidationError, match="at most 1MiB"):
        PodSpec(code="#" * (MAX_CODE_BYTES + 1))


# -- nesting ---------------------------------------------------------------------------------------
def test_parameters_may_nest_up_to_the_limit() -> None:
    # the spec is level 1, parameters level 2: 30 lists inside make 32 levels
    assert parse_spec({**NOTEBOOK, "parameters": {"a": nested(MAX_DEPTH - 2)}})
    error = _error({**NOTEBOOK, "parameters": {"a": nested(MAX_DEPTH - 1)}})
    assert "nests deeper than 32 levels; flatten it" in str(error)


def test_very_deep_or_cyclic_values_end_quickly() -> None:
    start = time.monotonic()
    assert "nests deeper than 32" in str(_error({**NOTEBOOK, "parameters": {"a": nested(100_000)}}))
    loop: list[Any] = []
    loop.append(loop)
    assert "nests deeper than 32" in str(_error({**NOTEBOOK, "parameters": {"a": loop}}))
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_refuses_nul_in_env(kind: str) -> None:
    assert "holds a NUL byte" in str(_error({**BASE[kind], "env": {"A": "\0"}}))
