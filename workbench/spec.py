"""The declarative description of a workload, one model per kind.

The same spec comes from a magic, the CLI, the REST API or a YAML file. Every flag of the
CLI and the magics is generated from the fields here (see ``x-flag`` in each field's
JSON Schema extra and :mod:`workbench.options`), and the sidebar builds its forms from
:func:`json_schema`. Validation errors become one-line :class:`~workbench.errors.SpecError`
messages naming the field, the bad value and what to write instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import SpecError
from .units import (
    DNS_SUBDOMAIN,
    ENV_NAME,
    check_label,
    check_name,
    parse_bytes,
    parse_cpu,
    parse_duration,
)

Kind = Literal["pod", "dask", "train", "notebook"]
KINDS: tuple[str, ...] = ("pod", "dask", "train", "notebook")
BackendName = Literal["local", "kubernetes"]


def flag(name: str, *, help: str, metavar: str | None = None, **extra: Any) -> dict[str, Any]:
    """JSON Schema extra that names the CLI/magic flag generated for a field."""
    info: dict[str, Any] = {"x-flag": name, "x-help": help}
    if metavar:
        info["x-metavar"] = metavar
    info.update(extra)
    return info


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)


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
                raise ValueError("an emptydir volume takes no name: write emptydir:/scratch")
        elif not self.source or not DNS_SUBDOMAIN.match(self.source):
            raise ValueError(f"{self.type} volume needs a DNS name, e.g. {self.type}/data:/data")
        return self


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

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value)

    @field_validator("env", "labels", "node_selector", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return dict(_split_pair(str(v), "=", "pair", "KEY=VALUE") for v in value)
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not ENV_NAME.match(key):
                raise ValueError(
                    f"environment variable name {key!r} must be letters, digits and '_', "
                    "not starting with a digit"
                )
        return value

    @field_validator("labels", "node_selector")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            check_label(key, item)
        return value

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
        if value is not None and (not value or any(c.isspace() for c in value)):
            raise ValueError(f"image {value!r} must be a reference like python:3.11 without spaces")
        return value


def _identifiers(value: Any, what: str) -> Any:
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        items = [str(v).strip() for part in value for v in str(part).split(",") if v.strip()]
        for item in items:
            if not item.isidentifier():
                raise ValueError(f"{what} {item!r} is not a Python variable name")
        return items
    return value


class CodeSpec(CommonSpec):
    """Fields of kinds that run Python code: a cell body or a script, with inputs and results."""

    code: str | None = Field(None, description="Python source to run (the cell body)")
    script: str | None = Field(None, description="path of a Python script to run")
    args: list[str] = Field(default_factory=list, description="arguments for the script")
    send: list[str] = Field(
        default_factory=list,
        json_schema_extra=flag("--send", help="kernel variables to ship in, a,b", metavar="A,B"),
    )
    get: list[str] = Field(
        default_factory=list,
        json_schema_extra=flag("--get", help="variables to bring back after success, c,d", metavar="C,D"),
    )

    @field_validator("send", "get", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return _identifiers(value, "variable")

    @model_validator(mode="after")
    def _one_source(self) -> CodeSpec:
        if (self.code is None) == (self.script is None):
            raise ValueError("give exactly one of code (a cell body) or script (a .py path)")
        if self.script is not None and not self.script.endswith(".py"):
            raise ValueError(f"script {self.script!r} must be a .py file")
        return self


class PodSpec(CodeSpec):
    """Run Python code in its own process (local) or a one-pod Job (Kubernetes)."""

    kind: Literal["pod"] = "pod"
    retries: int = Field(
        0, ge=0, le=10, json_schema_extra=flag("--retries", help="Job backoffLimit (Kubernetes)")
    )


class AdaptRange(_Model):
    """Adaptive scaling bounds for a Dask cluster."""

    minimum: int = Field(ge=0)
    maximum: int = Field(ge=1)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            low, sep, high = value.partition(":")
            if not sep or not low.strip().isdigit() or not high.strip().isdigit():
                raise ValueError(f"adapt {value!r} must be MIN:MAX, e.g. 1:8")
            return {"minimum": int(low), "maximum": int(high)}
        return value

    @model_validator(mode="after")
    def _order(self) -> AdaptRange:
        if self.minimum > self.maximum:
            raise ValueError(f"adapt {self.minimum}:{self.maximum} has MIN above MAX; write e.g. 2:5")
        return self


class DaskSpec(CommonSpec):
    """A Dask cluster: a scheduler and workers; resources apply to each worker."""

    kind: Literal["dask"] = "dask"
    workers: int = Field(2, ge=1, le=1000, json_schema_extra=flag("--workers", help="number of workers"))
    threads: int = Field(1, ge=1, le=256, json_schema_extra=flag("--threads", help="threads per worker"))
    adapt: AdaptRange | None = Field(
        None, json_schema_extra=flag("--adapt", help="adaptive scaling MIN:MAX", metavar="MIN:MAX")
    )
    idle_timeout: float | None = Field(
        3600.0, json_schema_extra=flag("--idle-timeout", help="shut down after idle for, e.g. 1h")
    )
    keep: bool = Field(
        False, json_schema_extra=flag("--keep", help="outlive the kernel", action="store_true")
    )

    @field_validator("idle_timeout", mode="before")
    @classmethod
    def _idle(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)


class TrainSpec(CodeSpec):
    """Distributed PyTorch: torchrun locally, an Indexed Job (or PyTorchJob) on Kubernetes."""

    kind: Literal["train"] = "train"
    nodes: int = Field(1, ge=1, le=1024, json_schema_extra=flag("--nodes", help="number of nodes"))
    procs_per_node: int = Field(
        1, ge=1, le=64, json_schema_extra=flag("--procs-per-node", help="processes per node")
    )
    max_restarts: int = Field(
        0, ge=0, le=100, json_schema_extra=flag("--max-restarts", help="elastic restarts")
    )
    operator: Literal["job", "kubeflow"] = Field(
        "job", json_schema_extra=flag("--operator", help="job (Indexed Job) or kubeflow (PyTorchJob)")
    )


class NotebookSpec(CommonSpec):
    """A notebook executed by papermill, with parameters and a run directory."""

    kind: Literal["notebook"] = "notebook"
    notebook: str = Field(description="path of the .ipynb to run")
    parameters: dict[str, Any] = Field(default_factory=dict)
    output: str | None = Field(
        None, json_schema_extra=flag("--output", help="run directory: path or fsspec URL")
    )
    kernel: str | None = Field(None, json_schema_extra=flag("--kernel", help="kernel name"))
    schedule: str | None = Field(None, json_schema_extra=flag("--schedule", help="cron schedule"))
    strict: bool = Field(
        False,
        json_schema_extra=flag("--strict", help="undeclared parameters are errors", action="store_true"),
    )

    @field_validator("notebook")
    @classmethod
    def _ipynb(cls, value: str) -> str:
        if not value.endswith(".ipynb"):
            raise ValueError(f"notebook {value!r} must be an .ipynb file")
        return value


Spec = Annotated[PodSpec | DaskSpec | TrainSpec | NotebookSpec, Field(discriminator="kind")]
MODELS: dict[str, type[CommonSpec]] = {
    "pod": PodSpec,
    "dask": DaskSpec,
    "train": TrainSpec,
    "notebook": NotebookSpec,
}
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Spec)


def _where(loc: tuple[int | str, ...], kind: str | None) -> str:
    """The flag (or dotted field path) a validation error points at."""
    model: Any = MODELS.get(kind or "")
    parts = [p for p in loc if isinstance(p, str) and p not in MODELS]
    path = ".".join(parts)
    for part in parts:
        field = getattr(model, "model_fields", {}).get(part) if model else None
        if field is None:
            break
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if "x-flag" in extra:
            return f"{extra['x-flag']} ({path})"
        annotation = field.annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return path or "spec"


def spec_error(exc: ValidationError, kind: str | None) -> SpecError:
    """One-line :class:`SpecError` from a pydantic error: the field, the bad value, the fix."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = _where(tuple(first["loc"]), kind)
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "is not a field of this kind"
    elif first["type"] == "literal_error":
        message = message.replace("Input should be", "must be")
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return SpecError(
        f"invalid {where}: {message}{more}",
        value=first.get("input"),
        hint=f"see `workbench schema {kind or 'pod'}` for every field",
    )


def parse_spec(data: Mapping[str, Any]) -> PodSpec | DaskSpec | TrainSpec | NotebookSpec:
    """Validate a spec dict (``kind`` chooses the model).

    Raises:
        SpecError: the first problem, in one line.
    """
    kind = data.get("kind")
    if kind not in MODELS:
        raise SpecError(
            f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}",
            value=kind,
            hint="set kind: pod, dask, train or notebook",
        )
    try:
        result: PodSpec | DaskSpec | TrainSpec | NotebookSpec = _ADAPTER.validate_python(dict(data))
    except ValidationError as exc:
        raise spec_error(exc, str(kind)) from None
    return result


def json_schema(kind: str) -> dict[str, Any]:
    """JSON Schema of one kind, the source of the sidebar's launch forms."""
    if kind not in MODELS:
        raise SpecError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}", value=kind)
    return MODELS[kind].model_json_schema()
