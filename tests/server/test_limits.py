"""The REST API bounds what it accepts: body size, nesting, NUL bytes, and the spec limits.

Issue 11, hole 6: today a 5 MB code or env is stored (and every GET /workloads returns it),
deep JSON is an HTTP 500, and NUL bytes make a workload that fails later.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.conftest import assert_nothing_created
from workbench.service import Service
from workbench.spec_limits import MAX_CODE_BYTES, MAX_DEPTH, MAX_ENV_VALUE_BYTES, MAX_SPEC_BYTES

from .conftest import Api

MB = 1024 * 1024
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


@pytest.fixture
def params_notebook(jp_root_dir: Path) -> str:
    """A real notebook without a parameters cell: any parameter is accepted with a warning."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    nb.cells.append(nbformat.v4.new_code_cell("x = 1"))
    nbformat.write(nb, str(jp_root_dir / "params.ipynb"))
    return "params.ipynb"


def nested(levels: int) -> str:
    return "[" * levels + "1" + "]" * levels


async def refused(api: Api, body: Any, words: str) -> dict[str, Any]:
    reply = await api("POST", "workloads", body=body)
    assert reply.code == 400, reply.body[:300]
    data: dict[str, Any] = reply.json
    assert data["error"] == "SpecError"
    assert words in data["message"], data["message"]
    assert len(reply.body) < 2000  # the answer does not echo megabytes back
    return data


async def test_a_body_over_the_limit_is_refused_before_parsing(api: Api, service: Service) -> None:
    await refused(api, {"kind": "pod", "code": "#" * (5 * MB)}, "the request body is 5.0MiB; at most 4MiB")
    await refused(api, {"kind": "pod", "code": "x = 1", "env": {"A": "x" * (5 * MB)}}, "at most 4MiB")
    await refused(api, b"[" * (MAX_SPEC_BYTES + 1), "the request body is")  # not even JSON
    assert_nothing_created(service)
    listing = await api("GET", "workloads")
    assert listing.code == 200 and listing.json == {"workloads": []}


async def test_code_and_env_over_their_limits_are_refused(api: Api, service: Service) -> None:
    await refused(
        api, {"kind": "pod", "code": "#" * (2 * MB)}, "invalid code: the code is 2MiB; at most 1MiB"
    )
    await refused(api, {"kind": "pod", "code": "#" * (MAX_CODE_BYTES + 1)}, "at most 1MiB")
    big = {"kind": "pod", "code": "x = 1", "env": {"A": "x" * (MAX_ENV_VALUE_BYTES + 1)}}
    await refused(api, big, "invalid --env (env): the value of A is 32.0KiB; at most 32KiB")
    many = {f"V{i}": "x" * 30_000 for i in range(10)}
    await refused(api, {"kind": "pod", "code": "x = 1", "env": many}, "the environment is")
    assert_nothing_created(service)


async def test_nul_bytes_are_refused(api: Api, service: Service, params_notebook: str) -> None:
    await refused(api, {"kind": "pod", "code": "x = 1", "env": {"A": "x\0y"}}, "holds a NUL byte")
    await refused(api, {"kind": "pod", "code": "print(1)\0"}, "code holds a NUL byte")
    await refused(api, {"kind": "pod", "code": "x = 1", "args": ["\0"]}, "args[0] holds a NUL byte")
    body = {"kind": "notebook", "notebook": params_notebook, "parameters": {"a": "\0"}}
    await refused(api, body, "parameters['a'] holds a NUL byte")
    await refused(api, {"kind": "pod", "code": "x = '\ud800'"}, "is not valid text")  # a lone surrogate
    assert_nothing_created(service)


async def test_deep_bodies_are_a_400_not_a_500(api: Api, service: Service, params_notebook: str) -> None:
    prefix = f'{{"kind": "notebook", "notebook": "{params_notebook}", "parameters": {{"a": '
    for levels in (100_000, 5_000, 900, MAX_DEPTH):
        body = prefix + nested(levels) + "}}"
        await refused(api, body, f"nests deeper than {MAX_DEPTH} levels")
    assert_nothing_created(service)


async def test_nesting_up_to_the_limit_is_accepted(api: Api, params_notebook: str) -> None:
    # the body is level 1, parameters level 2: 30 arrays inside make 32 levels
    body = {
        "kind": "notebook",
        "notebook": params_notebook,
        "parameters": {"a": json.loads(nested(MAX_DEPTH - 2))},
    }
    reply = await api("POST", "workloads", body=body)
    assert reply.code == 201, reply.body
    assert (await api("DELETE", "workloads", reply.json["name"], params={"force": "true"})).code == 204


@pytest.mark.parametrize(
    ("body", "words"),
    [
        pytest.param(b'{"kind": "pod", "code": ', "not valid JSON", id="truncated"),
        pytest.param(b"\xff\xfe{}", "not valid JSON", id="not-utf8"),
        pytest.param(b'{"kind": "pod", "code": "x"} trailing', "not valid JSON", id="trailing"),
        pytest.param(b'[{"kind": "pod"}]', "must be a JSON object, not list", id="array"),
        pytest.param(b'"pod"', "must be a JSON object, not str", id="string"),
        pytest.param(b"null", "must be a JSON object, not NoneType", id="null"),
        pytest.param(b"3", "must be a JSON object, not int", id="number"),
        pytest.param(b'{"kind": "pod", "code": "x", "timeout": NaN}', "NaN is not JSON", id="nan"),
        pytest.param(
            b'{"kind": "pod", "code": "x", "timeout": -Infinity}', "-Infinity is not JSON", id="inf"
        ),
    ],
)
async def test_malformed_bodies_are_a_400(api: Api, service: Service, body: bytes, words: str) -> None:
    await refused(api, body, words)
    assert_nothing_created(service)


async def test_nan_parameters_are_refused(api: Api, service: Service, params_notebook: str) -> None:
    body = f'{{"kind": "notebook", "notebook": "{params_notebook}", "parameters": {{"lr": NaN}}}}'
    await refused(api, body, "NaN is not JSON")
    assert_nothing_created(service)


async def test_scale_bodies_have_the_same_limits(api: Api) -> None:
    reply = await api("POST", "workloads", "nobody", "scale", body=nested(100_000))
    assert reply.code == 400 and "nests deeper" in reply.json["message"]
