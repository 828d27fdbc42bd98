"""Settings and profiles.

One precedence rule for every setting: an explicit argument beats a ``WORKBENCH_*``
environment variable, which beats the config file, which beats the default. The config
file is YAML at ``$WORKBENCH_CONFIG`` (default ``~/.config/workbench/config.yaml``)::

    backend: local
    profiles:
      a100-small:
        resources: {gpus: 1, gpu_type: NVIDIA-A100-SXM4-80GB, memory: 32Gi}
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from ._version import __version__
from .errors import SpecError
from .spec import Resources, SecretRef, Volume
from .spec_limits import shown
from .units import parse_duration

#: The runtime images built from images/ (they carry workbench.runtime, papermill and torch).
DEFAULT_IMAGE = f"ghcr.io/jupyter-ml-workbench/runtime:{__version__}"
DEFAULT_CUDA_IMAGE = f"ghcr.io/jupyter-ml-workbench/runtime-cuda:{__version__}"


def config_path() -> Path:
    """Where the config file is read from."""
    explicit = os.environ.get("WORKBENCH_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "workbench" / "config.yaml"


def default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "workbench"


def folder_problem(path: Path, *, writable: bool = False) -> str | None:
    """Why ``path`` cannot be, or be made, a folder to keep files in; None when it can.

    Looks only (nothing is created): ``path`` or the nearest folder above it that exists must
    be a folder on a real filesystem (not /proc or /sys), and with ``writable`` one this user
    may write in.
    """
    probe = path
    try:
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        if not probe.is_dir():
            return "is a file, not a folder" if probe == path else f"is under {probe}, which is a file"
        virtual = os.statvfs(probe).f_blocks == 0  # proc, sysfs, cgroup…: no blocks to hold files
    except OSError as exc:
        return f"cannot be checked: {exc.strerror or exc}"
    if virtual:
        return f"is on a virtual filesystem ({probe}), which cannot hold files"
    if writable and not os.access(probe, os.W_OK | os.X_OK):
        return f"cannot be written by this user ({probe} is read-only to them)"
    return None


class Profile(BaseModel):
    """A named preset of spec fields; explicit fields of a spec win over it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str | None = None
    image: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    secrets: list[SecretRef] = Field(default_factory=list)
    volumes: list[Volume] = Field(default_factory=list)
    resources: Resources | None = None
    timeout: float | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    backend: Literal["local", "kubernetes"] | None = None
    queue: str | None = None
    priority_class: str | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    def as_spec_fields(self) -> dict[str, Any]:
        """The fields this profile sets, as spec input."""
        data = self.model_dump(exclude_none=True, exclude={"description"}, mode="json")
        return {k: v for k, v in data.items() if v not in ({}, [])}


class KubernetesConfig(BaseModel):
    """How to reach the cluster and what every generated object gets.

    Set in the config file under ``kubernetes:`` or as ``WORKBENCH_KUBERNETES__FIELD``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    context: str | None = Field(None, description="kubeconfig context; default: the current one")
    kubeconfig: str | None = Field(
        None, description="kubeconfig file; default: $KUBECONFIG or ~/.kube/config"
    )
    in_cluster: bool = Field(
        default_factory=lambda: bool(os.environ.get("KUBERNETES_SERVICE_HOST")),
        description="use the pod's service account (JupyterHub on Kubernetes)",
    )
    namespace: str | None = Field(None, description="default: the context's namespace, else 'default'")
    service_account: str | None = None
    image_pull_secrets: list[str] = Field(default_factory=list)
    gpu_resource: str = "nvidia.com/gpu"
    gpu_node_label: str = "nvidia.com/gpu.product"
    gpu_tolerations: list[dict[str, str]] | None = Field(
        None, description="tolerations for GPU pods; default: nvidia.com/gpu Exists NoSchedule"
    )
    queue: str | None = Field(None, description="default Kueue LocalQueue")
    ttl_seconds_after_finished: int = Field(86400, ge=0)
    run_as_user: int = Field(
        10001, ge=1, description="uid/gid the pods run as (the images' 10001); below 10000 is refused"
    )
    default_cpu: str = Field("500m", description="CPU request and limit of a container given no --cpu")
    default_memory: str = Field(
        "1Gi", description="memory request and limit of a container given no --memory"
    )
    client_labels: dict[str, str] = Field(
        default_factory=lambda: {"workbench.jupyter.org/client": "true"},
        description="labels of the pods (notebooks, Jupyter) that may reach a Dask scheduler",
    )
    dask_operator_namespace: str | None = Field(
        "dask-operator", description="namespace of the Dask operator, which must reach the schedulers"
    )
    version: str | None = Field(None, description="server version to target with --dry-run, e.g. 1.33")
    request_timeout: float = Field(30.0, gt=0)
    retries: int = Field(3, ge=0, le=10)
    retry_backoff: float = Field(0.25, ge=0)


class MlflowConfig(BaseModel):
    """MLflow tracking (see :mod:`workbench.tracking`): present in the config, it tracks every launch.

    Set in the config file under ``mlflow:`` or as ``WORKBENCH_MLFLOW__FIELD``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tracking_uri: str | None = Field(
        None, description="default: $MLFLOW_TRACKING_URI, else a SQLite store under the home"
    )
    experiment: str | None = Field(None, description="default: $MLFLOW_EXPERIMENT_NAME, else 'workbench'")


class Settings(BaseSettings):
    """Everything an admin or user can configure."""

    model_config = SettingsConfigDict(
        env_prefix="WORKBENCH_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    home: Path = Field(default_factory=default_home, description="state store and run directories")
    backend: Literal["local", "kubernetes"] = "local"
    image: str = DEFAULT_IMAGE
    owner: str = Field(default_factory=getpass.getuser)
    profiles: dict[str, Profile] = Field(default_factory=dict)
    local_gpus: Annotated[list[str] | None, NoDecode] = Field(
        None, description="GPU indices the local backend may use; unset = detect with nvidia-smi"
    )
    kill_grace: float = Field(5.0, description="seconds between SIGTERM and SIGKILL")
    poll_interval: float = Field(0.05, gt=0, le=5, description="longest wait between log reads")
    usage_period: float = Field(
        5.0, ge=0, description="seconds between resource samples of a local workload; 0 turns them off"
    )
    usage_history: float = Field(3600.0, gt=0, description="seconds of resource samples kept per workload")
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig)
    mlflow: MlflowConfig | None = Field(None, description="track every launch in MLflow (else --track)")

    @field_validator("home", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        home = value.expanduser().resolve()
        problem = folder_problem(home)
        if problem:
            raise ValueError(f"{str(value)!r} {problem}; the home holds the store and the run directories")
        return home

    @field_validator("local_gpus", mode="before")
    @classmethod
    def _gpu_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.lower() in ("", "none"):
                return []
            return [part.strip() for part in text.split(",") if part.strip()]
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
        return value

    @field_validator("kill_grace", "usage_history", mode="before")
    @classmethod
    def _grace(cls, value: Any) -> Any:
        return parse_duration(value)

    @field_validator("usage_period", mode="before")
    @classmethod
    def _period(cls, value: Any) -> Any:  # 0 (off) is no duration
        return 0.0 if str(value).strip() in ("0", "0.0", "off") else parse_duration(value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # explicit argument > WORKBENCH_* environment > config file > defaults
        path = config_path()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path.is_file():
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)

    @property
    def db_path(self) -> Path:
        return self.home / "workbench.db"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    def profile(self, name: str) -> Profile:
        """The named profile.

        Raises:
            SpecError: no such profile, listing the ones that exist.
        """
        if name not in self.profiles:
            known = ", ".join(sorted(self.profiles)) or "none are configured"
            raise SpecError(
                f"unknown profile {name!r} (known: {known})",
                value=name,
                hint=f"add it under profiles: in {config_path()} or pick a known one",
            )
        return self.profiles[name]


def _yaml_errors() -> tuple[type[Exception], ...]:
    yaml = sys.modules.get("yaml")
    return (yaml.YAMLError,) if yaml is not None else ()


def load_settings(**explicit: Any) -> Settings:
    """Build settings with the precedence rule; a bad setting is a one-line SpecError."""
    try:
        path = config_path()
        if path.is_file():
            import yaml  # only with a config file: it costs a kernel's first magic ~15 ms

            if not isinstance(yaml.safe_load(path.read_bytes()) or {}, dict):
                raise TypeError("not a mapping")  # pydantic-settings would read a list as pairs
        return Settings(**explicit)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        if message.startswith("Input should be"):  # name the bad value, as spec errors do
            message = f"{shown(first.get('input'))} {message.replace('Input should be', 'must be')}"
        raise SpecError(
            f"invalid setting {where}: {message}",
            value=first.get("input"),
            hint=f"fix WORKBENCH_{where.split('.')[0].upper()} or {config_path()}",
        ) from None
    except Exception as exc:  # unreadable or malformed YAML
        if not isinstance(exc, (OSError, ValueError, TypeError, *_yaml_errors())):
            raise
        detail = " ".join(str(exc).split())
        if isinstance(exc, TypeError):
            detail = "the top level must be a mapping of setting: value"
        raise SpecError(
            f"cannot read the config file {config_path()}: {detail}",
            value=str(config_path()),
            hint="fix the YAML or point WORKBENCH_CONFIG elsewhere",
        ) from None


_PAIR_FIELDS = ("env", "labels", "node_selector")


def merge_profile(raw: Mapping[str, Any], profile: Profile) -> dict[str, Any]:
    """Spec input with the profile's fields filled in where the spec does not set them.

    Mappings (env, labels, node selector, resources) merge key by key; the spec's keys win.
    """
    merged: dict[str, Any] = dict(profile.as_spec_fields())
    for key, value in raw.items():
        if key in _PAIR_FIELDS and isinstance(value, (list, tuple)):
            value = dict(str(item).partition("=")[::2] for item in value)
        base = merged.get(key)
        if isinstance(base, dict) and isinstance(value, Mapping):
            merged[key] = {**base, **{k: v for k, v in value.items() if v is not None}}
        elif value is not None or key not in merged:
            merged[key] = value
    resources = merged.get("resources")
    asked = raw.get("resources")
    if isinstance(resources, dict) and isinstance(asked, Mapping) and str(asked.get("gpus")) == "0":
        resources.pop("gpu_type", None)  # an explicit --gpus 0 drops the profile's GPU type too
    return merged
