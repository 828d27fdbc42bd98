"""Value models inside specs: resources, secret references, volumes, scaling ranges.

Also the readers every front end shares for a list of names (``--send a,b``) and for a Dask
cluster's scale (a worker count, an adaptive range).

Also :func:`flag`, the JSON Schema extra that names the CLI/magic flag generated for a field.
Every model refuses NUL bytes, broken text, deep nesting and overlong text in its fields
(:mod:`workbench.spec_limits`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import SpecError
from .spec_limits import (
    LONG_TEXT,
    MAX_TEXT,
    MAX_WORKERS,
    bounded_value,
    check_text,
    place,
    reserved_env,
    shown,
)
from .units import DNS_SUBDOMAIN, ENV_NAME, check_label, parse_bytes, parse_cpu


def flag(name: str, *, help: str, metavar: str | None = None, **extra: Any) -> dict[str, Any]:
    """JSON Schema extra that names the CLI/magic flag generated for a field."""
    info: dict[str, Any] = {"x-flag": name, "x-help": help}
    if metavar:
        info["x-metavar"] = metavar
    info.update(extra)
    return info


class _Model(BaseModel):
    # built on first use (defer_build): a launch builds only its own kind's validator
    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True, defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _text(cls, data: Any) -> Any:
        """No NUL, no broken text, no deep nesting, and no overlong text in any field.

        A model validator, not a field one: pydantic allows no validator on ``kind``, the
        field that chooses the model. So the message names the field itself.
        """
        if not isinstance(data, Mapping):
            return data
        for name, value in data.items():
            field = cls.model_fields.get(name) if isinstance(name, str) else None
            extra = field.json_schema_extra if field and isinstance(field.json_schema_extra, dict) else {}
            flag = extra.get("x-flag")
            check_text(value, str(name), flag if isinstance(flag, str) else None)
            if isinstance(value, str) and name not in LONG_TEXT and len(value) > MAX_TEXT:
                where = place(str(name), flag if isinstance(flag, str) else None, ())
                raise ValueError(f"{where} is {len(value)} characters; at most {MAX_TEXT} are allowed")
        return data


def _split_pair(item: str, sep: str, what: str, example: str) -> tuple[str, str]:
    key, found, value = item.partition(sep)
    if not found or not key:
        raise ValueError(f"{what} {item!r} must look like {example}")
    return key, value


class Resources(_Model):
    """What one process (or pod, worker, node) may use."""

    cpu: str | None = Field(None, json_schema_extra=flag("--cpu", help="CPU cores, e.g. 2 or 500m"))
    memory: str | None = Field(
        None, json_schema_extra=flag("--memory", help="memory limit, e.g. 4Gi or 512Mi")
    )
    gpus: int = Field(0, json_schema_extra=flag("--gpus", help="whole number of NVIDIA GPUs", metavar="N"))
    gpu_type: str | None = Field(
        None,
        json_schema_extra=flag("--gpu-type", help="GPU product, e.g. NVIDIA-A100-SXM4-80GB"),
    )
    shm: str | None = Field(None, json_schema_extra=flag("--shm", help="size of /dev/shm, e.g. 1Gi"))

    @field_validator("cpu", mode="before")
    @classmethod
    def _cpu(cls, value: Any) -> Any:
        if value is None:
            return None
        parse_cpu(value)
        return str(value).strip()

    @field_validator("memory", "shm", mode="before")
    @classmethod
    def _bytes(cls, value: Any) -> Any:
        if value is None:
            return None
        parse_bytes(value)
        return str(value).strip()

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpus(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not a number of GPUs; write a whole number such as 1")
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{value!r} is not a whole number; GPUs are not shared, ask for 1, 2…")
        if isinstance(value, str):
            text = value.strip()
            if not text.lstrip("-").isdigit():
                raise ValueError(f"{value!r} is not a whole number of GPUs; write 0, 1, 2…")
            value = int(text)
        if isinstance(value, (int, float)) and value < 0:
            raise ValueError(f"{value!r} is negative; ask for 0 or more GPUs")
        return value

    @field_validator("gpu_type")
    @classmethod
    def _gpu_type(cls, value: str | None) -> str | None:
        if value is not None:
            check_label("gpu-type", value)
        return value

    @model_validator(mode="after")
    def _type_needs_gpus(self) -> Resources:
        if self.gpu_type and self.gpus == 0:
            raise ValueError(f"--gpu-type {self.gpu_type!r} needs --gpus 1 or more")
        return self


class SecretRef(_Model):
    """An environment variable filled from a key of a secret, by reference only."""

    env: str
    secret: str
    key: str

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            env, ref = _split_pair(value, "=", "secret", "ENV=SECRET:KEY (e.g. TOKEN=hf-token:token)")
            secret, key = _split_pair(ref, ":", "secret", "ENV=SECRET:KEY (e.g. TOKEN=hf-token:token)")
            return {"env": env, "secret": secret, "key": key}
        return value

    @model_validator(mode="after")
    def _check(self) -> SecretRef:
        if not ENV_NAME.match(self.env):
            raise ValueError(f"secret env name {self.env!r} is not a valid variable name")
        reason = reserved_env(self.env)
        if reason:
            raise ValueError(reason)
        if len(self.secret) > 253 or not DNS_SUBDOMAIN.match(self.secret):
            raise ValueError(f"secret name {self.secret!r} must be a DNS name like 'hf-token'")
        if not self.key or not all(c.isalnum() or c in "-._" for c in self.key):
            raise ValueError(f"secret key {self.key!r} may hold only letters, digits, '-', '_', '.'")
        return self


VolumeType = Literal["pvc", "configmap", "secret", "emptydir"]


class Volume(_Model):
    """A volume mounted into the workload (Kubernetes only; local runs ignore it)."""

    type: VolumeType
    source: str | None = None
    mount_path: str
    read_only: bool = False

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        example = "TYPE[/NAME]:MOUNT[:ro], e.g. pvc/data:/data or emptydir:/scratch"
        source_part, mount_part = _split_pair(value, ":", "volume", example)
        vtype, _, source = source_part.partition("/")
        mount, _, mode = mount_part.partition(":")
        if mode not in ("", "ro", "rw"):
            raise ValueError(f"volume mode {mode!r} must be ro or rw")
        return {"type": vtype, "source": source or None, "mount_path": mount, "read_only": mode == "ro"}

    @model_validator(mode="after")
    def _check(self) -> Volume:
        if not self.mount_path.startswith("/") or ".." in self.mount_path.split("/"):
            raise ValueError(f"volume mount path {self.mount_path!r} must be absolute, without '..'")
        if self.type == "emptydir":
            if self.source:
                name = repr(self.source)
                raise ValueError(f"an emptydir volume takes no name ({name}): write emptydir:/scratch")
        elif not self.source or not DNS_SUBDOMAIN.match(self.source):
            raise ValueError(f"{self.type} volume needs a DNS name, e.g. {self.type}/data:/data")
        return self


class AdaptRange(_Model):
    """Adaptive scaling bounds for a Dask cluster."""

    minimum: int = Field(ge=0, le=MAX_WORKERS)
    maximum: int = Field(ge=1, le=MAX_WORKERS)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            low, sep, high = value.partition(":")
            if not sep or not all(p.strip().isascii() and p.strip().isdigit() for p in (low, high)):
                raise ValueError(f"adapt {value!r} must be MIN:MAX, e.g. 1:8")
            return {"minimum": int(low), "maximum": int(high)}
        return value

    @model_validator(mode="after")
    def _order(self) -> AdaptRange:
        if self.minimum > self.maximum:
            raise ValueError(f"adapt {self.minimum}:{self.maximum} has MIN above MAX; write e.g. 2:5")
        return self


def split_names(value: Any) -> list[str]:
    """Names from ``"a,b"`` or ``["a,b", "c"]``: split at commas, trimmed, empty ones dropped.

    The one reading of a list-of-names flag (``--send a,b``, ``--get c``) for every front end.
    """
    parts = [value] if isinstance(value, str) else list(value)
    return [name.strip() for part in parts for name in str(part).split(",") if name.strip()]


def _identifiers(value: Any, what: str) -> Any:
    if not isinstance(value, (str, list, tuple)):
        return value
    items = split_names(value)
    if not items and any(str(part).strip() for part in ([value] if isinstance(value, str) else value)):
        raise ValueError(f"{value!r} names no {what}; write names separated by commas, e.g. a,b")
    for item in items:
        if not item.isidentifier():
            raise ValueError(f"{what} {item!r} is not a Python variable name")
    return items


def check_workers(workers: Any) -> int:
    """A Dask cluster's worker count to scale to, from 0 to :data:`.MAX_WORKERS`.

    Raises:
        SpecError: not a whole number in that range (text such as ``"4"`` is read as one).
    """
    text = str(workers).strip() if isinstance(workers, (str, int)) and not isinstance(workers, bool) else ""
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_WORKERS:
        raise SpecError(
            f"workers {shown(workers)} must be a whole number from 0 to {MAX_WORKERS}",
            value=bounded_value(workers, ("workers",)),
            hint="e.g. scale NAME 4",
        )
    return int(text)


def check_adapt(value: Any) -> AdaptRange:
    """Adaptive scaling bounds from ``"MIN:MAX"`` (or a mapping), at most :data:`.MAX_WORKERS`.

    Raises:
        SpecError: naming the bad range.
    """
    try:
        return AdaptRange.model_validate(value)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        detail = str(first["msg"]).removeprefix("Value error, ").replace("Input should be", "must be")
        where = ".".join(str(p) for p in first["loc"])
        raise SpecError(
            f"adapt {shown(value)}: {where} {detail}" if where else detail,
            value=bounded_value(value, ("adapt",)),
            hint=f"write MIN:MAX with MAX at most {MAX_WORKERS}, e.g. 1:8",
        ) from None
