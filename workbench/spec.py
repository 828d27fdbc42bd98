"""The declarative description of a workload, one model per kind.

The same spec comes from a magic, the CLI, the REST API or a YAML file. Every flag of the
CLI and the magics is generated from the fields here (see ``x-flag`` in each field's
JSON Schema extra and :mod:`workbench.options`), and the sidebar builds its forms from
:func:`json_schema`. Validation errors become one-line :class:`~workbench.errors.SpecError`
messages naming the field, the bad value and what to write instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from . import spec_limits as limits
from .errors import SpecError
from .spec_base import SPLIT, CodeSpec, CommonSpec
from .spec_serve import RevisionChange, ServeSpec
from .spec_types import (
    AdaptRange,
    Resources,
    SecretRef,
    Volume,
    VolumeType,
    check_adapt,
    check_workers,
    flag,
    split_names,
)
from .units import (
    DNS_SUBDOMAIN,
    check_cron,
    check_location,
    parse_duration,
)

__all__ = [
    "KINDS",
    "MODELS",
    "SPLIT",
    "AdaptRange",
    "CodeSpec",
    "CommonSpec",
    "DaskSpec",
    "NotebookSpec",
    "PodSpec",
    "Resources",
    "RevisionChange",
    "SecretRef",
    "ServeSpec",
    "Spec",
    "TrainSpec",
    "Volume",
    "VolumeType",
    "check_adapt",
    "check_workers",
    "flag",
    "json_schema",
    "parse_spec",
    "spec_mapping",
    "split_names",
]

Kind = Literal["pod", "dask", "train", "notebook", "serve"]
#: a run location: a path, or a URL of a filesystem fsspec knows (see :func:`check_location`)
Location = Annotated[str, AfterValidator(check_location)]
_OUTPUT_HELP = (
    "where WORKBENCH_OUTPUT_DIR is published at the end (OUTPUT/NAME; rank 0 of a training job): "
    "a path on a --volume or an fsspec URL"
)
KINDS: tuple[str, ...] = ("pod", "dask", "train", "notebook", "serve")


class PodSpec(CodeSpec):
    """Run Python code in its own process (local) or a one-pod Job (Kubernetes)."""

    kind: Literal["pod"] = "pod"
    retries: int = Field(
        0, ge=0, le=10, json_schema_extra=flag("--retries", help="Job backoffLimit (Kubernetes)")
    )
    output: Location | None = Field(
        None, json_schema_extra=flag("--output", help=_OUTPUT_HELP, metavar="LOCATION")
    )


class DaskSpec(CommonSpec):
    """A Dask cluster: a scheduler and workers; resources apply to each worker."""

    kind: Literal["dask"] = "dask"
    #: set for every worker by the Dask operator (or the local cluster)
    WORKER_ENV: ClassVar[tuple[str, ...]] = ("DASK_SCHEDULER_ADDRESS", "DASK_WORKER_NAME")
    workers: int = Field(
        2, ge=1, le=limits.MAX_WORKERS, json_schema_extra=flag("--workers", help="number of workers")
    )
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

    @model_validator(mode="after")
    def _worker_env(self) -> DaskSpec:
        for name in (*self.env, *(ref.env for ref in self.secrets)):
            if name in self.WORKER_ENV:
                raise ValueError(
                    f"{name} is set by the Dask operator (or the local cluster) for every worker; drop it"
                )
        return self


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
    checkpoint_dir: Location | None = Field(
        None,
        json_schema_extra=flag(
            "--checkpoint-dir",
            help="where wt.save_checkpoint writes (DIR/checkpoint.pt): a path on a --volume or an fsspec URL",
            metavar="LOCATION",
        ),
    )
    output: Location | None = Field(
        None, json_schema_extra=flag("--output", help=_OUTPUT_HELP, metavar="LOCATION")
    )
    operator: Literal["job", "kubeflow"] = Field(
        "job",
        json_schema_extra=flag(
            "--operator", help="job (Indexed Job) or kubeflow (Kubeflow Trainer TrainJob, else PyTorchJob)"
        ),
    )
    runtime: str | None = Field(
        None,
        json_schema_extra=flag(
            "--runtime",
            help="Kubeflow Trainer ClusterTrainingRuntime (--operator kubeflow; default torch-distributed)",
            metavar="NAME",
        ),
    )

    @field_validator("runtime")
    @classmethod
    def _runtime_name(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > 253 or not DNS_SUBDOMAIN.match(value)):
            raise ValueError(
                f"--runtime {value!r} is not a Kubernetes name (lower-case letters, digits, '-', '.')"
            )
        return value

    @model_validator(mode="after")
    def _runtime_needs_kubeflow(self) -> TrainSpec:
        if self.runtime is not None and self.operator != "kubeflow":
            raise ValueError(
                f"--runtime {self.runtime} names a Kubeflow Trainer runtime: add --operator kubeflow, "
                "or drop --runtime to run an Indexed Job"
            )
        return self


class NotebookSpec(CommonSpec):
    """A notebook executed by papermill, with parameters and a run directory."""

    kind: Literal["notebook"] = "notebook"
    notebook: str = Field(description="path of the .ipynb to run")
    parameters: dict[str, Any] = Field(default_factory=dict)
    output: str | None = Field(
        None,
        json_schema_extra=flag(
            "--output", help="where run directories go (each run gets OUTPUT/NAME): a path or fsspec URL"
        ),
    )
    kernel: str | None = Field(None, json_schema_extra=flag("--kernel", help="kernel name"))
    schedule: str | None = Field(None, json_schema_extra=flag("--schedule", help="cron schedule"))
    strict: bool = Field(
        False,
        json_schema_extra=flag("--strict", help="undeclared parameters are errors", action="store_true"),
    )
    sign: bool = Field(
        False, description="sign the provenance manifest with this machine's key (local backend; --sign)"
    )

    @field_validator("parameters")
    @classmethod
    def _parameters_size(cls, value: dict[str, Any]) -> dict[str, Any]:
        limits.check_parameters(value)
        return value

    @field_validator("notebook")
    @classmethod
    def _ipynb(cls, value: str) -> str:
        if not value.endswith(".ipynb"):
            raise ValueError(f"notebook {value!r} must be an .ipynb file")
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return None if value is None else check_cron(value)

    @field_validator("output")
    @classmethod
    def _output(cls, value: str | None) -> str | None:
        return None if value is None else check_location(value)


AnySpec = PodSpec | DaskSpec | TrainSpec | NotebookSpec | ServeSpec
Spec = Annotated[AnySpec, Field(discriminator="kind")]
MODELS: dict[str, type[CommonSpec]] = {
    "pod": PodSpec,
    "dask": DaskSpec,
    "train": TrainSpec,
    "notebook": NotebookSpec,
    "serve": ServeSpec,
}


def _local(loc: tuple[int | str, ...], kind: str | None) -> tuple[int | str, ...]:
    """``loc`` inside the spec: a discriminated union puts the tag first."""
    return loc[1:] if loc and loc[0] == kind else loc


def _where(loc: tuple[int | str, ...], kind: str | None, model: Any = None) -> str:
    """The flag (or dotted field path) a validation error points at."""
    model = model or MODELS.get(kind or "")
    loc = _local(loc, kind)
    parts = [p for p in loc if isinstance(p, str)]
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


_RANGE_ERRORS = {
    "literal_error",
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
    "enum",
    "union_tag_invalid",
    "finite_number",
}


def spec_error(
    exc: ValidationError, kind: str | None, model: type[BaseModel] | None = None, *, tagged: bool = True
) -> SpecError:
    """One-line :class:`SpecError` from a pydantic error: the field, the bad value, the fix
    (``model``: the model that was validated, when it is not ``kind``'s spec; ``tagged``: the
    error locations start with the kind, as a discriminated union gives them); its ``fields``
    list every bad field with a message in the words of a form (no flag names)."""
    errors = exc.errors(include_url=False)
    if not tagged and kind:  # validated by the kind's own model: locations as the union gives them
        errors = [{**error, "loc": (kind, *error["loc"])} for error in errors]
    first = errors[0]
    where = _where(tuple(first["loc"]), kind, model)
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    fields = [
        {
            "field": ".".join(str(part) for part in _local(tuple(error["loc"]), kind)),
            "message": limits.shorten(_FLAG.sub(lambda m: m[1].replace("-", " "), _message(error))),
        }
        for error in errors
    ]
    return SpecError(
        f"invalid {where}: {limits.shorten(_message(first))}{more}",
        value=limits.bounded_value(first.get("input"), _local(tuple(first["loc"]), kind)),
        hint=f"see `workbench schema {kind or 'pod'}` for every field",
        fields=fields,
    )


#: a flag named in a message (``--gpus``): a form names the field instead
_FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")


def _message(error: Any) -> str:
    """What is wrong, in words, from one pydantic error."""
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return "is not a field of this kind"
    if error["type"] in _RANGE_ERRORS or error["type"].endswith(("_type", "_parsing")):
        return f"{limits.shown(error.get('input'))} " + message.replace("Input should be", "must be")
    return message


def parse_spec(data: Mapping[str, Any]) -> AnySpec:
    """Validate a spec dict (``kind`` chooses the model).

    Raises:
        SpecError: the first problem, in one line.
    """
    kind = spec_mapping(data).get("kind")
    if not isinstance(kind, str) or kind not in MODELS:
        raise SpecError(
            f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}",
            value=kind,
            hint="set kind: pod, dask, train, notebook or serve",
        )
    try:
        # the kind's own model (not the union of all): only its validator is built
        result: PodSpec | DaskSpec | TrainSpec | NotebookSpec | ServeSpec = MODELS[kind].model_validate(
            dict(data)
        )  # type: ignore[assignment]
    except ValidationError as exc:
        raise spec_error(exc, str(kind), tagged=False) from None
    return result


def spec_mapping(data: Any) -> Mapping[str, Any]:
    """``data`` when it can be a spec's raw fields (a mapping).

    Raises:
        SpecError: anything else (text, a list, None…), naming what it is.
    """
    if isinstance(data, Mapping):
        return data
    raise SpecError(
        "a spec must be a mapping of fields or a spec object, not "
        + ("None" if data is None else f"{type(data).__name__} {limits.shown(data)}"),
        value=limits.bounded_value(data, ("spec",)),
        hint='e.g. {"kind": "pod", "code": "print(1)"}; see `workbench schema pod`',
    )


def json_schema(kind: str) -> dict[str, Any]:
    """JSON Schema of one kind, the source of the sidebar's launch forms."""
    if kind not in MODELS:
        raise SpecError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}", value=kind)
    return MODELS[kind].model_json_schema()
