"""Settings precedence (explicit > WORKBENCH_* environment > config file > default) and profiles."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from workbench.config import DEFAULT_IMAGE, Profile, Settings, config_path, load_settings
from workbench.errors import SpecError
from workbench.service import Service
from workbench.spec import PodSpec


@pytest.fixture(autouse=True)
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean environment: no WORKBENCH_* variables, config and data under tmp_path.

    Returns the path WORKBENCH_CONFIG points at (not created).
    """
    for key in list(os.environ):
        if key.startswith("WORKBENCH_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    path = tmp_path / "config.yaml"
    monkeypatch.setenv("WORKBENCH_CONFIG", str(path))
    return path


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


# -- precedence -----------------------------------------------------------------------------------


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.backend == "local"
    assert settings.image == DEFAULT_IMAGE
    assert settings.home == (tmp_path / "xdg-data" / "workbench").resolve()
    assert settings.local_gpus is None
    assert settings.profiles == {}
    assert settings.kill_grace == 5.0
    assert settings.db_path == settings.home / "workbench.db"
    assert settings.runs_dir == settings.home / "runs"


@pytest.mark.parametrize(
    ("field", "default", "in_file", "in_env", "explicit"),
    [
        ("backend", "local", "kubernetes", "local", "kubernetes"),
        ("image", DEFAULT_IMAGE, "file:1", "env:2", "explicit:3"),
    ],
)
def test_precedence(
    config_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    field: str,
    default: str,
    in_file: str,
    in_env: str,
    explicit: str,
) -> None:
    assert getattr(load_settings(), field) == default
    write(config_file, {field: in_file})
    assert getattr(load_settings(), field) == in_file
    monkeypatch.setenv(f"WORKBENCH_{field.upper()}", in_env)
    assert getattr(load_settings(), field) == in_env
    assert getattr(load_settings(**{field: explicit}), field) == explicit


def test_home_precedence(config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(config_file, {"home": str(tmp_path / "from-file")})
    assert load_settings().home == (tmp_path / "from-file").resolve()
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "from-env"))
    assert load_settings().home == (tmp_path / "from-env").resolve()
    assert load_settings(home=tmp_path / "explicit").home == (tmp_path / "explicit").resolve()


def test_home_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(home="relative/wb")
    assert settings.home.is_absolute()
    assert settings.home == (tmp_path / "relative" / "wb").resolve()
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert load_settings(home="~/wb").home == (tmp_path / "user" / "wb").resolve()


def test_explicit_arguments_are_validated() -> None:
    with pytest.raises(SpecError, match="invalid setting backend"):
        load_settings(backend="cloud")


def test_explicit_argument_hides_a_bad_environment_value(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(config_file, {"backend": "cloud"})
    monkeypatch.setenv("WORKBENCH_BACKEND", "cloud")
    assert load_settings(backend="kubernetes").backend == "kubernetes"


@pytest.mark.parametrize(
    ("text", "gpus"),
    [("0,1", ["0", "1"]), (" 0 , 2 ", ["0", "2"]), ("3", ["3"]), ("none", []), ("NONE", []), ("", [])],
)
def test_local_gpus_from_environment(monkeypatch: pytest.MonkeyPatch, text: str, gpus: list[str]) -> None:
    monkeypatch.setenv("WORKBENCH_LOCAL_GPUS", text)
    assert load_settings().local_gpus == gpus


def test_local_gpus_precedence(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(config_file, {"local_gpus": [0, 1, 2]})
    assert load_settings().local_gpus == ["0", "1", "2"]
    monkeypatch.setenv("WORKBENCH_LOCAL_GPUS", "none")
    assert load_settings().local_gpus == []
    assert load_settings(local_gpus="1").local_gpus == ["1"]
    assert load_settings(local_gpus=[4, 5]).local_gpus == ["4", "5"]


def test_kill_grace_accepts_durations(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(config_file, {"kill_grace": "10s"})
    assert load_settings().kill_grace == 10.0
    monkeypatch.setenv("WORKBENCH_KILL_GRACE", "1m")
    assert load_settings().kill_grace == 60.0


def test_config_path_defaults_to_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKBENCH_CONFIG")
    expected = tmp_path / "xdg-config" / "workbench" / "config.yaml"
    assert config_path() == expected
    expected.parent.mkdir(parents=True)
    write(expected, {"backend": "kubernetes"})
    assert load_settings().backend == "kubernetes"


def test_workbench_config_points_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = write(tmp_path / "other.yaml", {"image": "other:1"})
    monkeypatch.setenv("WORKBENCH_CONFIG", str(other))
    assert config_path() == other
    assert load_settings().image == "other:1"


# -- profiles ---------------------------------------------------------------------------------------

PROFILES: dict[str, Any] = {
    "profiles": {
        "a100-small": {
            "description": "one A100",
            "image": "trainer:2",
            "env": {"A": "1", "B": "2"},
            "labels": {"team": "ml"},
            "resources": {"gpus": 1, "gpu_type": "NVIDIA-A100-SXM4-80GB", "memory": "32Gi"},
        },
        "cpu-only": {"resources": {"cpu": "2", "memory": "4Gi"}, "timeout": 600},
    }
}


def test_profiles_from_config_file(config_file: Path) -> None:
    write(config_file, PROFILES)
    settings = load_settings()
    assert sorted(settings.profiles) == ["a100-small", "cpu-only"]
    profile = settings.profile("a100-small")
    assert isinstance(profile, Profile)
    assert profile.description == "one A100"
    assert profile.resources is not None
    assert profile.resources.gpus == 1
    assert profile.resources.memory == "32Gi"
    assert profile.env == {"A": "1", "B": "2"}
    assert settings.profile("cpu-only").timeout == 600.0
    fields = profile.as_spec_fields()
    assert "description" not in fields
    assert fields["image"] == "trainer:2"
    assert fields["resources"]["gpu_type"] == "NVIDIA-A100-SXM4-80GB"


def test_unknown_profile_lists_the_known_ones(config_file: Path) -> None:
    write(config_file, PROFILES)
    with pytest.raises(SpecError) as info:
        load_settings().profile("h100-large")
    line = info.value.one_line()
    assert "unknown profile 'h100-large' (known: a100-small, cpu-only)" in line
    assert str(config_file) in line
    assert info.value.value == "h100-large"


def test_unknown_profile_without_any_configured() -> None:
    with pytest.raises(SpecError, match=r"unknown profile 'gpu' \(known: none are configured\)"):
        Settings().profile("gpu")


def test_profile_timeout_accepts_durations(config_file: Path) -> None:
    write(config_file, {"profiles": {"long": {"timeout": "1h"}}})
    assert load_settings().profile("long").timeout == 3600.0


# -- malformed config -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("bogus: 1\n", ["invalid setting bogus", "Extra inputs are not permitted"]),
        ("backend: cloud\n", ["invalid setting backend", "'local' or 'kubernetes'", "WORKBENCH_BACKEND"]),
        ("kill_grace: soon\n", ["invalid setting kill_grace", "'soon' is not a duration"]),
        ("poll_interval: 0\n", ["invalid setting poll_interval", "greater than 0"]),
        (
            "profiles:\n  p:\n    resources: {gpus: -1}\n",
            ["invalid setting profiles.p.resources.gpus", "-1 is negative"],
        ),
        ("profiles:\n  p:\n    gpus: 1\n", ["invalid setting profiles.p.gpus", "not permitted"]),
        ("profiles:\n  p:\n    env: [A=1]\n", ["invalid setting profiles.p.env"]),
        ("- a\n- b\n", ["cannot read the config file", "fix the YAML or point WORKBENCH_CONFIG elsewhere"]),
    ],
)
def test_malformed_config_is_one_line_spec_error(config_file: Path, text: str, words: list[str]) -> None:
    config_file.write_text(text)
    with pytest.raises(SpecError) as info:
        load_settings()
    line = info.value.one_line()
    assert "\n" not in line
    assert str(config_file) in line
    for word in words:
        assert word in line, f"{word!r} missing from {line!r}"


def test_undecodable_config_is_spec_error(config_file: Path) -> None:
    config_file.write_bytes(b"backend: \xff\n")
    with pytest.raises(SpecError, match="cannot read the config file") as info:
        load_settings()
    assert "\n" not in info.value.one_line()


@pytest.mark.parametrize("text", ["backend: [\n", "image: 'unterminated\n", "a: b: c\n"])
def test_bad_yaml_is_one_line_spec_error(config_file: Path, text: str) -> None:
    config_file.write_text(text)
    with pytest.raises(SpecError) as info:
        load_settings()
    line = info.value.one_line()
    assert "cannot read the config file" in line
    assert "\n" not in line


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_BACKEND", "cloud")
    with pytest.raises(SpecError) as info:
        load_settings()
    line = info.value.one_line()
    assert "invalid setting backend" in line
    assert "fix WORKBENCH_BACKEND" in line
    assert info.value.value == "cloud"


# -- profiles resolved into specs -------------------------------------------------------------------


@pytest.fixture
def service(config_file: Path) -> Service:
    write(config_file, {**PROFILES, "image": "settings-image:1", "backend": "local"})
    return Service(load_settings())


CODE: dict[str, Any] = {"kind": "pod", "code": "x = 1"}


def test_resolve_without_profile_takes_settings_defaults(service: Service) -> None:
    spec = service.resolve({**CODE, "name": None})
    assert isinstance(spec, PodSpec)
    assert spec.image == "settings-image:1"
    assert spec.backend == "local"
    assert spec.name is None
    assert spec.resources.gpus == 0


def test_resolve_fills_fields_from_profile(service: Service) -> None:
    spec = service.resolve({**CODE, "profile": "a100-small"})
    assert spec.profile == "a100-small"
    assert spec.resources.gpus == 1
    assert spec.resources.memory == "32Gi"
    assert spec.resources.gpu_type == "NVIDIA-A100-SXM4-80GB"
    assert spec.env == {"A": "1", "B": "2"}
    assert spec.labels == {"team": "ml"}
    assert spec.image == "trainer:2"


def test_resolve_explicit_fields_win_and_mappings_merge(service: Service) -> None:
    spec = service.resolve(
        {
            **CODE,
            "profile": "a100-small",
            "image": "mine:1",
            "env": {"B": "3", "C": "4"},
            "labels": {"owner": "ada"},
            "resources": {"memory": "8Gi", "cpu": None},
            "backend": "kubernetes",
        }
    )
    assert spec.image == "mine:1"
    assert spec.backend == "kubernetes"
    assert spec.env == {"A": "1", "B": "3", "C": "4"}
    assert spec.labels == {"team": "ml", "owner": "ada"}
    assert spec.resources.memory == "8Gi"
    assert spec.resources.gpus == 1
    assert spec.resources.gpu_type == "NVIDIA-A100-SXM4-80GB"
    assert spec.resources.cpu is None


def test_resolve_profile_timeout_and_explicit_timeout(service: Service) -> None:
    assert service.resolve({**CODE, "profile": "cpu-only"}).timeout == 600.0
    assert service.resolve({**CODE, "profile": "cpu-only", "timeout": "30s"}).timeout == 30.0


def test_resolve_unknown_profile(service: Service) -> None:
    with pytest.raises(SpecError) as info:
        service.resolve({**CODE, "profile": "h100"})
    assert "unknown profile 'h100' (known: a100-small, cpu-only)" in info.value.one_line()


def test_resolve_invalid_field_after_merge(service: Service) -> None:
    with pytest.raises(SpecError, match=r"invalid --memory \(resources.memory\): '4' is under 1Mi"):
        service.resolve({**CODE, "profile": "a100-small", "resources": {"memory": "4"}})


def test_resolve_merges_k_v_lists_with_profile(service: Service) -> None:
    spec = service.resolve({**CODE, "profile": "a100-small", "env": ["B=3"], "labels": ["owner=ada"]})
    assert spec.env == {"A": "1", "B": "3"}
    assert spec.labels == {"team": "ml", "owner": "ada"}


def test_explicit_zero_gpus_drops_the_profile_gpu_type(service: Service) -> None:
    spec = service.resolve({**CODE, "profile": "a100-small", "resources": {"gpus": "0"}})
    assert spec.resources.gpus == 0
    assert spec.resources.gpu_type is None
    assert spec.resources.memory == "32Gi"
