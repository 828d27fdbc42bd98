"""Every bad input to the REST API, against one real Jupyter server: 4xx, the error as JSON
whose one-line message names the value, and nothing created.

One server answers all the cases (starting one per case would cost a second each); each case
is checked in full and every failing one is reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..cases import FIELDS, REST, REST_ONLY, fill
from ..conftest import assert_nothing_created, copy_workspace, one_line, places
from .conftest import Api

FIELD_CASES = [f for f in FIELDS if f.applies(REST)]


async def check(
    api: Api, home: Path, request: tuple[Any, ...], status: int | None, value: str, says: str
) -> str | None:
    """What is wrong with the answer to ``request`` (None: a clear refusal, nothing created)."""
    method, path, body, params = request
    reply = await api(method, *path, body=body, params=params or None)
    try:
        assert 400 <= reply.code < 500 and (status is None or reply.code == status), reply.code
        error = reply.json
        assert set(error) >= {"error", "message", "value", "hint"}, error
        line = one_line(error["message"])
        assert value in line and says in line, line
        assert_nothing_created(home)
    except AssertionError as exc:
        return f"{reply.code} {reply.body[:300]!r}: {exc}"
    return None


async def test_every_bad_request_is_refused(
    api: Api, wb_home: Path, workspace: Path, jp_root_dir: Path
) -> None:
    copy_workspace(workspace, jp_root_dir)  # the server reads the files a spec names from its root
    where = places(jp_root_dir)
    failures = {}
    for field in FIELD_CASES:
        # a path outside the root (/proc) or a URL scheme the server does not allow is refused
        # with 403 before the local backend sees it; anything else is 400
        problem = await check(
            api, wb_home, ("POST", ("workloads",), field.full_spec(), None), None, field.value, field.says
        )
        if problem:
            failures[field.id] = problem
    for case in REST_ONLY:
        request = (case.method, case.path, case.body, case.params)
        problem = await check(api, wb_home, request, case.status, fill(case.value, where), case.says)
        if problem:
            failures[case.id] = problem
    assert failures == {}, "\n".join(f"{name}: {text}" for name, text in failures.items())
    assert len(FIELD_CASES) + len(REST_ONLY) >= 150
