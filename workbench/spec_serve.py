"""The ``serve`` kind: a model behind a stable endpoint, and the changes a rollout makes to it.

A serve workload runs revisions of a model: the first from the launch, each next one from a
:class:`RevisionChange` (new code, a new model URI, new environment variables or a new
image). The endpoint keeps its URL while traffic moves between revisions.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from . import spec_limits as limits
from .spec_base import SPLIT, CodeSpec, checked_env, checked_image, pairs
from .spec_types import AdaptRange, _identifiers, _Model, flag
from .units import parse_quantity

#: a model name in ``/v2/models/{name}``: what KServe and Triton accept in a URL path segment
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
DEFAULT_MAX_BODY = 16 * 1024 * 1024
MAX_REPLICAS = 100


#: model URIs that name an MLflow model (the registry's, or a run's)
MLFLOW_SCHEMES = ("models:/", "runs:/")
#: the code of an endpoint that serves an MLflow model and brings no code of its own
PYFUNC_CODE = """\
# served by workbench: the MLflow model at --model-uri, through mlflow.pyfunc
from workbench.runtime import serve_pyfunc


def load(model_uri):
    serve_pyfunc.load(model_uri)


def predict(inputs):
    return serve_pyfunc.predict(inputs)
"""


def is_mlflow_uri(uri: object) -> bool:
    """Whether ``uri`` names an MLflow model (``models:/NAME/VERSION``, ``runs:/ID/PATH``)."""
    return isinstance(uri, str) and uri.startswith(MLFLOW_SCHEMES)


def _model_uri(value: str | None) -> str | None:
    if value is not None and (not value.strip() or value != value.strip() or "\n" in value):
        raise ValueError(f"model URI {value!r} must be a path or URL like s3://bucket/model, without blanks")
    return value


def _body_size(value: Any) -> Any:
    if isinstance(value, str):
        try:
            size = parse_quantity(value)
        except ValueError:
            raise ValueError(f"max body {value!r} must be a size like 16Mi or 1048576") from None
        if size != int(size):
            raise ValueError(f"max body {value!r} must be a whole number of bytes")
        return int(size)
    return value


class ServeSpec(CodeSpec):
    """A model served behind an endpoint: replica processes behind a router (local), a
    Deployment + Service (Kubernetes) or a KServe InferenceService (``--operator kserve``)."""

    kind: Literal["serve"] = "serve"
    model_name: str | None = Field(
        None,
        json_schema_extra=flag("--model-name", help="name in /v2/models/NAME (default: the workload name)"),
    )
    model_uri: str | None = Field(
        None,
        json_schema_extra=flag(
            "--model-uri",
            help="weights handed to load(): a path or fsspec URL (models:/NAME/VERSION: an MLflow model)",
        ),
    )
    replicas: int = Field(
        1, ge=1, le=MAX_REPLICAS, json_schema_extra=flag("--replicas", help="model server replicas")
    )
    autoscale: AdaptRange | None = Field(
        None,
        json_schema_extra=flag(
            "--autoscale", help="scale replicas with load between MIN:MAX", metavar="MIN:MAX"
        ),
    )
    target_concurrency: float = Field(
        4.0,
        gt=0,
        le=10000,
        json_schema_extra=flag(
            "--target-concurrency", help="in-flight requests per replica that autoscaling aims at"
        ),
    )
    max_body: int = Field(
        DEFAULT_MAX_BODY,
        ge=1024,
        le=2 * 1024**3,
        json_schema_extra=flag("--max-body", help="largest request body, e.g. 16Mi (bigger ones get 413)"),
    )
    operator: Literal["deployment", "kserve"] = Field(
        "deployment",
        json_schema_extra=flag(
            "--operator", help="Kubernetes: deployment (Deployment + Service) or kserve (InferenceService)"
        ),
    )
    port: int | None = Field(
        None, ge=1024, le=65535, json_schema_extra=flag("--port", help="local endpoint port (default: free)")
    )

    @model_validator(mode="before")
    @classmethod
    def _mlflow_model(cls, data: Any) -> Any:
        """An MLflow model URI and no code (or an empty cell): serve it through mlflow.pyfunc."""
        if isinstance(data, dict) and is_mlflow_uri(data.get("model_uri")) and data.get("script") is None:
            code = data.get("code")
            if code is None or (isinstance(code, str) and not code.strip()):
                return {**data, "code": PYFUNC_CODE}
        return data

    @field_validator("model_name")
    @classmethod
    def _model_name(cls, value: str | None) -> str | None:
        if value is not None and not MODEL_NAME.match(value):
            raise ValueError(
                f"model name {value!r} must be letters, digits, '.', '_' or '-' (≤ 63), e.g. iris-v1"
            )
        return value

    @field_validator("model_uri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        return _model_uri(value)

    @field_validator("max_body", mode="before")
    @classmethod
    def _max_body(cls, value: Any) -> Any:
        return _body_size(value)

    @field_validator("get")
    @classmethod
    def _no_get(cls, value: list[str]) -> list[str]:
        if value:
            raise ValueError("--get does not apply to serve: call the endpoint (Service.predict) instead")
        return value

    @field_validator("autoscale")
    @classmethod
    def _autoscale(cls, scale: AdaptRange | None) -> AdaptRange | None:
        if scale is not None and scale.minimum < 1:
            raise ValueError(
                f"{scale.minimum}:{scale.maximum}: an endpoint keeps at least one replica; "
                f"write e.g. 1:{scale.maximum}"
            )
        if scale is not None and scale.maximum > MAX_REPLICAS:
            raise ValueError(f"{scale.minimum}:{scale.maximum}: at most {MAX_REPLICAS} replicas")
        return scale

    @model_validator(mode="after")
    def _serving(self) -> ServeSpec:
        scale = self.autoscale
        if scale is not None:
            if self.replicas > scale.maximum:
                raise ValueError(
                    f"replicas {self.replicas} is above the autoscale maximum {scale.maximum}; "
                    "give fewer replicas or a larger MAX"
                )
            if self.replicas < scale.minimum:
                object.__setattr__(self, "replicas", scale.minimum)  # start at the floor
        return self

    def served_name(self, workload_id: str) -> str:
        """The model's name in the endpoint's URLs."""
        return self.model_name or workload_id


class RevisionChange(_Model):
    """What a rollout changes: the code (a cell or a file), the model URI, environment
    variables (merged over the current revision's), the image; ``canary`` sends only that
    percent of the requests to the new revision until it is promoted."""

    code: str | None = Field(None, description="new model code (a cell body)")
    script: str | None = Field(None, description="new model file (.py)")
    send: list[str] = Field(
        default_factory=list,
        json_schema_extra=flag("--send", help="kernel variables to ship in, a,b", metavar="A,B", **SPLIT),
    )
    model_uri: str | None = Field(None, json_schema_extra=flag("--model-uri", help="new weights"))
    env: dict[str, str] = Field(
        default_factory=dict,
        json_schema_extra=flag("--env", help="set environment variable K=V (repeatable)", metavar="K=V"),
    )
    image: str | None = Field(None, json_schema_extra=flag("--image", help="new container image"))
    canary: int | None = Field(
        None,
        ge=0,
        le=100,
        json_schema_extra=flag("--canary", help="send only PERCENT of requests to it until promoted"),
    )
    cause: str | None = Field(None, description="why (shown in the history)")

    @field_validator("send", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return _identifiers(value, "variable")

    @field_validator("env", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> Any:
        return pairs(value)

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        return checked_env(value)

    @field_validator("code")
    @classmethod
    def _code_size(cls, value: str | None) -> str | None:
        limits.check_code(value)
        return value

    @field_validator("model_uri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        return _model_uri(value)

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        return checked_image(value)

    @model_validator(mode="after")
    def _something(self) -> RevisionChange:
        if self.code is not None and self.script is not None:
            raise ValueError("give one of code (a cell body) or script (a .py file), not both")
        if self.script is not None and not self.script.endswith(".py"):
            raise ValueError(f"script {self.script!r} must be a .py file")
        if self.send and self.code is None and self.script is None:
            raise ValueError("--send ships variables to new code: give the code (a cell or FILE) too")
        if (self.code, self.script, self.model_uri, self.image) == (None, None, None, None) and not self.env:
            raise ValueError("a rollout needs a change: a FILE (or cell), --model-uri, --env K=V or --image")
        return self
