"""Endpoints that serve models from MLflow's model registry.

``--model-uri models:/NAME/VERSION`` (or ``models:/NAME@alias``, ``models:/NAME/latest``, or a
run's ``runs:/ID/PATH``) with no code of its own serves that MLflow model through
``mlflow.pyfunc`` (:mod:`workbench.runtime.serve_pyfunc`). When an endpoint is launched or
rolled out to such a URI, the registry is asked first:

- an alias or ``latest`` is pinned to the version it names now, so every replica of the
  revision serves the same version and the revision's history says which one
  (``models:/iris/3``), whatever the alias points to later;
- a version or model that does not exist is refused in one line that lists the versions
  there are, and nothing is created;
- the endpoint gets ``MLFLOW_TRACKING_URI`` (the registry's), as a tracked workload does.

The registry is the tracking store workbench uses (:func:`workbench.tracking.target`): the
configured one, ``MLFLOW_TRACKING_URI``, or the embedded SQLite store. MLflow is imported only
when a launch or rollout names such a URI.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .errors import SpecError
from .runtime import track_end
from .spec_serve import is_mlflow_uri

if TYPE_CHECKING:
    from .config import Settings
    from .spec_serve import RevisionChange, ServeSpec

#: ``models:/NAME/VERSION``, ``models:/NAME/latest`` or ``models:/NAME@alias``
_REGISTRY = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))$")
_FORMS = "models:/NAME/VERSION, models:/NAME@alias or models:/NAME/latest"


def registry_uri(settings: Settings, env: dict[str, str]) -> str:
    """The registry's URI: the endpoint's own ``--env MLFLOW_TRACKING_URI``, else workbench's store."""
    from .tracking import target

    where = target(settings, track=True)
    return env.get("MLFLOW_TRACKING_URI") or (where.uri if where is not None else "")


def pin(uri: str, registry: str) -> tuple[str, str | None]:
    """``uri`` with its version made explicit, and that version (None for a ``runs:/`` URI).

    Raises:
        SpecError: not a registry URI workbench can read, no such model or version, or the
            registry cannot be reached.
    """
    if not uri.startswith("models:/"):
        return uri, None
    found = _REGISTRY.match(uri)
    if found is None:
        raise SpecError(f"--model-uri {uri!r} must be {_FORMS}", value=uri, hint="e.g. models:/iris/2")
    name, version, alias = found["name"], found["version"], found["alias"]
    from .tracking import require_mlflow

    require_mlflow("--model-uri models:/")
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=registry, registry_uri=registry)
    shown = track_end.shown_uri(registry)
    try:
        with track_end.short_requests():
            versions = sorted(
                (v.version for v in client.search_model_versions(f"name = '{_quoted(name)}'")), key=int
            )
            if alias is not None:
                resolved = str(client.get_model_version_by_alias(name, alias).version)
            elif version == "latest" and versions:
                resolved = str(versions[-1])
            else:
                resolved = str(version)
    except MlflowException as exc:
        if alias is not None and "alias" in str(exc).lower():
            raise SpecError(
                f"--model-uri {uri}: model {name!r} has no alias {alias!r} in the registry at {shown}",
                value=uri,
                hint=f"set it (MlflowClient.set_registered_model_alias) or give a version; {_have(versions)}",
            ) from None
        raise _unreachable(uri, shown, exc) from None
    except Exception as exc:  # a server that is down, a store that cannot be opened
        raise _unreachable(uri, shown, exc) from None
    if resolved not in {str(v) for v in versions}:
        what = f"no version {version}" if versions else "no versions"
        raise SpecError(
            f"--model-uri {uri}: model {name!r} has {what} in the registry at {shown}",
            value=uri,
            hint=_have(versions)
            if versions
            else "register one with mlflow.register_model (or log_model's registered_model_name)",
        )
    return f"models:/{name}/{resolved}", resolved


def _quoted(name: str) -> str:
    return name.replace("'", "\\'")


def _have(versions: list[Any]) -> str:
    return "versions there: " + ", ".join(str(v) for v in versions)


def _unreachable(uri: str, shown: str, exc: BaseException) -> SpecError:
    return SpecError(
        f"--model-uri {uri}: cannot read the model registry at {shown} ({track_end.reason(exc)})",
        value=uri,
        hint="start the tracking server, or set mlflow.tracking_uri in the config",
    )


def _checked_env(registry: str, backend: str, env: dict[str, str], uri: str) -> dict[str, str]:
    from .tracking import on_this_machine

    if backend != "local" and on_this_machine(registry):
        raise SpecError(
            f"--model-uri {uri}: the registry {track_end.shown_uri(registry)} is a file on this "
            "machine, which the cluster's pods cannot read",
            value=uri,
            hint="set mlflow.tracking_uri to a tracking server the cluster reaches",
        )
    return {**env, "MLFLOW_TRACKING_URI": registry}


def prepare_spec(settings: Settings, spec: ServeSpec) -> ServeSpec:
    """A serve spec whose model is an MLflow one: its version pinned, the registry in its env."""
    if not is_mlflow_uri(spec.model_uri) or spec.model_uri is None:
        return spec
    registry = registry_uri(settings, spec.env)
    pinned, _ = pin(spec.model_uri, registry)
    env = _checked_env(registry, spec.backend or settings.backend, spec.env, spec.model_uri)
    return spec.model_copy(update={"model_uri": pinned, "env": env})


def prepare_change(settings: Settings, backend: str, change: RevisionChange) -> RevisionChange:
    """A rollout to an MLflow model: its version pinned (the cause says so), the registry in its env."""
    if not is_mlflow_uri(change.model_uri) or change.model_uri is None:
        return change
    registry = registry_uri(settings, change.env)
    pinned, version = pin(change.model_uri, registry)
    cause = change.cause
    if cause is None and version is not None:
        cause = f"model {change.model_uri}" + (f" (version {version})" if pinned != change.model_uri else "")
    env = _checked_env(registry, backend, change.env, change.model_uri)
    return change.model_copy(update={"model_uri": pinned, "env": env, "cause": cause})
