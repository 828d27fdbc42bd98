"""jupyter_server decides who may call the API: its token, its XSRF check and its Authorizer."""

from __future__ import annotations

from typing import Any

import pytest
from jupyter_server.auth.authorizer import Authorizer
from tornado.httpclient import HTTPResponse

from tests.conftest import assert_nothing_created
from workbench.service import Service

from .conftest import Api

ENDPOINTS = [
    ("GET", ("workloads",)),
    ("POST", ("workloads",)),
    ("GET", ("workloads", "some")),
    ("DELETE", ("workloads", "some")),
    ("POST", ("workloads", "some", "cancel")),
    ("GET", ("workloads", "some", "logs")),
    ("POST", ("workloads", "some", "scale")),
    ("GET", ("workloads", "some", "files")),
    ("GET", ("workloads", "some", "files", "output.ipynb")),
    ("GET", ("workloads", "some", "spec")),
    ("POST", ("workloads", "some", "rerun")),
    ("POST", ("workloads", "some", "pause")),
    ("POST", ("workloads", "some", "resume")),
    ("GET", ("workloads", "some", "runs")),
    ("GET", ("notebook-parameters",)),
    ("GET", ("schemas",)),
    ("GET", ("schemas", "pod")),
    ("GET", ("profiles",)),
    ("GET", ("backends",)),
]
SPEC = {"kind": "pod", "code": "print('hi')"}


class NoWorkbench(Authorizer):
    """Allows everything except the workbench API."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource != "workbench"


def body_for(method: str) -> str | None:
    return '{"kind": "pod", "code": "pass"}' if method == "POST" else None


@pytest.mark.parametrize(("method", "parts"), ENDPOINTS)
async def test_no_token_is_refused(api: Api, service: Service, method: str, parts: tuple[str, ...]) -> None:
    reply = await api(method, *parts, body=body_for(method), headers={"Authorization": ""})
    assert reply.code == 403, reply.body
    assert_nothing_created(service)


async def test_a_wrong_token_is_refused(api: Api, service: Service) -> None:
    wrong = {"Authorization": "token not-the-token"}
    assert (await api("GET", "workloads", headers=wrong)).code == 403
    assert (await api("POST", "workloads", body=SPEC, headers=wrong)).code == 403
    assert_nothing_created(service)


@pytest.mark.parametrize("server_config", [{"authorizer_class": NoWorkbench}])
@pytest.mark.parametrize(("method", "parts"), ENDPOINTS)
async def test_the_authorizer_decides_on_every_endpoint(
    api: Api, jp_fetch: Any, service: Service, method: str, parts: tuple[str, ...]
) -> None:
    reply = await api(method, *parts, body=body_for(method))
    assert reply.code == 403, reply.body
    assert_nothing_created(service)
    other: HTTPResponse = await jp_fetch("api", "status")  # the same user, another resource
    assert other.code == 200


async def test_xsrf_protection_stays_on_for_cookie_sessions(
    api: Api, jp_auth_header: dict[str, str], service: Service
) -> None:
    # a token-authenticated request makes jupyter_server set its login cookie, as in a browser
    first = await api("GET", "workloads")
    assert first.code == 200
    cookies = "; ".join(c.split(";", 1)[0] for c in first.headers.get_list("Set-Cookie"))
    assert cookies
    assert (await api("GET", "workloads", headers={"Authorization": "", "Cookie": cookies})).code == 200
    forged = await api("POST", "workloads", body=SPEC, headers={"Authorization": "", "Cookie": cookies})
    assert forged.code == 403  # no _xsrf token: a cross-site form cannot launch workloads
    assert_nothing_created(service)
