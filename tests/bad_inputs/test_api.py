"""Every bad input to the Python API: a WorkbenchError of the bad-input family (exit code 2)
whose one line names the value, and nothing created."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench import errors
from workbench.config import load_settings
from workbench.service import Service

from .cases import API, API_ONLY, FIELDS, SETTINGS_ONLY, ApiCase, Field, SettingsCase, fill
from .conftest import assert_nothing_created, one_line, places

FIELD_CASES = [f for f in FIELDS if f.applies(API)]


def check(error: errors.WorkbenchError, value: str, says: str) -> None:
    assert error.exit_code == 2 and 400 <= error.http_status < 500, type(error)
    line = one_line(error.one_line())
    assert value in line and says in line, line


@pytest.mark.parametrize("case", FIELD_CASES, ids=lambda c: c.id)
def test_bad_spec_field(case: Field, workspace: Path, service: Service, wb_home: Path) -> None:
    with pytest.raises(errors.SpecError) as info:
        service.launch(case.full_spec(), cwd=str(workspace))
    check(info.value, case.value, case.says)
    assert_nothing_created(wb_home)


@pytest.mark.parametrize("case", API_ONLY, ids=lambda c: c.id)
def test_bad_call(
    case: ApiCase, workspace: Path, service: Service, wb_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workspace)  # a sweep's notebook is read relative to the working directory
    with pytest.raises(getattr(errors, case.error)) as info:
        result = case.call(service)
        if hasattr(result, "__next__"):  # logs() is a generator: it fails when read
            next(result)
    check(info.value, case.value, case.says)
    assert_nothing_created(wb_home)


@pytest.mark.parametrize("case", SETTINGS_ONLY, ids=lambda c: c.id)
def test_bad_setting(case: SettingsCase, workspace: Path, wb_home: Path) -> None:
    where = places(workspace)
    fields = {k: fill(v, where) if isinstance(v, str) else v for k, v in case.fields.items()}
    with pytest.raises(errors.SpecError) as info:
        Service(load_settings(**fields))
    check(info.value, fill(case.value, where), case.says)
    assert_nothing_created(wb_home)
