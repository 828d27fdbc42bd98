"""The fields every kind shares (:class:`CommonSpec`) and those of kinds that run Python code
(:class:`CodeSpec`); the kinds themselves are in :mod:`workbench.spec` and
:mod:`workbench.spec_serve`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from . import spec_limits as limits
from .spec_types import Resources, SecretRef, Volume, _identifiers, _Model, _split_pair, flag
from .units import DNS_SUBDOMAIN, ENV_NAME, check_label, check_name, parse_duration

BackendName = Literal["local", "kubernetes"]
#: flag extra of a list of names given comma-separated (``--send a,b``): see :func:`split_names`
SPLIT: dict[str, Any] = {"x-split": ","}


def pairs(value: Any) -> Any:
    """``["K=V", …]`` (flags) as a mapping; anything else as it is, for the model to check."""
    if isinstance(value, (list, tuple)):
        return dict(_split_pair(str(v), "=", "pair", "KEY=VALUE") for v in value)
    return value


def checked_env(value: dict[str, str]) -> dict[str, str]:
    """Environment variables with valid names, none reserved, within the size limits."""
    for key in value:
        if not ENV_NAME.match(key):
            raise ValueError(
                f"environment variable name {key!r} must be letters, digits and '_', "
                "not starting with a digit"
            )
    limits.check_env(value)
    return value


def checked_image(value: str | None) -> str | None:
    if value is not None and (not value or any(c.isspace() for c in value)):
        raise ValueError(f"image {value!r} must be a reference like python:3.11 without spaces")
    return value


class CommonSpec(_Model):
    """Fields every kind has."""

    name: str | None = Field(
        None, json_schema_extra=flag("--name", help="workload name (RFC 1123, ≤ 40 chars)")
    )
    image: str | None = Field(None, json_schema_extra=flag("--image", help="container image (Kubernetes)"))
    env: dict[str, str] = Field(
        default_factory=dict,
        json_schema_extra=flag("--env", help="environment variable K=V (repeatable)", metavar="K=V"),
    )
    secrets: list[SecretRef] = Field(
        default_factory=list,
        json_schema_extra=flag(
            "--secret", help="env from a secret key, ENV=SECRET:KEY (repeatable)", metavar="ENV=SECRET:KEY"
        ),
    )
    volumes: list[Volume] = Field(
        default_factory=list,
        json_schema_extra=flag(
            "--volume", help="TYPE[/NAME]:MOUNT[:ro], e.g. pvc/data:/data (repeatable)", metavar="VOL"
        ),
    )
    resources: Resources = Field(default_factory=Resources)
    timeout: float | None = Field(
        None, json_schema_extra=flag("--timeout", help="stop after this long, e.g. 90, 30s, 2h")
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        json_schema_extra=flag("--label", help="label K=V (repeatable)", metavar="K=V"),
    )
    profile: str | None = Field(
        None, json_schema_extra=flag("--profile", help="named preset from the config")
    )
    backend: BackendName | None = Field(
        None, json_schema_extra=flag("--backend", help="where to run: local or kubernetes")
    )
    queue: str | None = Field(None, json_schema_extra=flag("--queue", help="Kueue LocalQueue name"))
    priority_class: str | None = Field(
        None, json_schema_extra=flag("--priority-class", help="Kubernetes PriorityClass name")
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        json_schema_extra=flag("--node-selector", help="node label K=V (repeatable)", metavar="K=V"),
    )
    track: bool = Field(
        False, json_schema_extra=flag("--track", help="track it as an MLflow run", action="store_true")
    )

    @model_validator(mode="before")
    @classmethod
    def _spec_size(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            limits.check_spec_size(data)
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value)

    @field_validator("env", "labels", "node_selector", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> Any:
        return pairs(value)

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        return checked_env(value)

    @field_validator("labels", "node_selector")
    @classmethod
    def _labels(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        for key, item in value.items():
            check_label(key, item)
        limits.check_labels(value, ours=info.field_name == "labels")
        return value

    @model_validator(mode="after")
    def _env_once(self) -> CommonSpec:
        limits.check_env_once(self.env, [ref.env for ref in self.secrets])
        return self

    @field_validator("queue", "priority_class")
    @classmethod
    def _k8s_name(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > 253 or not DNS_SUBDOMAIN.match(value)):
            raise ValueError(f"{value!r} must be a Kubernetes object name like 'team-a'")
        return value

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        return checked_image(value)


class CodeSpec(CommonSpec):
    """Fields of kinds that run Python code: a cell body or a script, with inputs and results."""

    code: str | None = Field(None, description="Python source to run (the cell body)")
    script: str | None = Field(None, description="path of a Python script to run")
    args: list[str] = Field(default_factory=list, description="arguments for the script")
    send: list[str] = Field(
        default_factory=list,
        json_schema_extra=flag("--send", help="kernel variables to ship in, a,b", metavar="A,B", **SPLIT),
    )
    get: list[str] = Field(
        default_factory=list,
        json_schema_extra=flag(
            "--get", help="variables to bring back after success, c,d", metavar="C,D", **SPLIT
        ),
    )

    @field_validator("send", "get", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return _identifiers(value, "variable")

    @field_validator("code")
    @classmethod
    def _code_size(cls, value: str | None) -> str | None:
        limits.check_code(value)
        return value

    @model_validator(mode="after")
    def _one_source(self) -> CodeSpec:
        if (self.code is None) == (self.script is None):
            raise ValueError("give exactly one of code (a cell body) or script (a .py path)")
        if self.script is not None and not self.script.endswith(".py"):
            raise ValueError(f"script {self.script!r} must be a .py file")
        return self
