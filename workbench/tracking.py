"""MLflow tracking of workloads: every tracked launch is an MLflow run.

Tracking is off unless switched on: ``--track`` on a launch (the spec's ``track``), an
``mlflow:`` section in the config (``tracking_uri``, ``experiment``), or ``MLFLOW_TRACKING_URI``
set in the launcher's environment. Its store is, in that order, the configured URI,
``MLFLOW_TRACKING_URI``, or the embedded one: SQLite at ``WORKBENCH_HOME/mlflow.db`` with
artifacts under ``WORKBENCH_HOME/mlartifacts`` (private to the user; ``workbench mlflow ui``
shows it).

At launch (:func:`submit`), before the workload starts, the run is created: named after the
workload, in the experiment (default ``workbench``), with the notebook parameters and the
resources as params and the system tags (``mlflow.source.name`` is the notebook or script
path, ``mlflow.source.git.commit`` its repository's commit, ``mlflow.user``, …). The workload
gets ``MLFLOW_TRACKING_URI``, ``MLFLOW_RUN_ID`` and ``MLFLOW_EXPERIMENT_ID``, so the user's own
``mlflow.log_*`` calls and ``workbench.log_metric`` land in that run; the record keeps
``info["mlflow"]``. At the end (:mod:`workbench.runtime.track_end`) the run's status mirrors the
workload's and its files become artifacts: a local workload's supervisor has that done, and
the service does it for any workload when it next sees the record final (:func:`end_if_final`).

A tracking store that cannot be reached never fails or holds up a workload: the launch says
so in one warning line and the workload runs untracked. MLflow is imported only for tracked
workloads; this module itself imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import tracking_sweeps
from .errors import SpecError
from .private import create_private, private_dir
from .runtime import track_end
from .spec import NotebookSpec, ServeSpec

if TYPE_CHECKING:
    from .backends.base import Backend, Payload
    from .config import Settings
    from .spec import CommonSpec
    from .store import Store, Workload

INSTALL = "pip install 'jupyter-ml-workbench[mlflow]'"
DEFAULT_EXPERIMENT = "workbench"
#: The variables a tracked workload gets; with tracking on, only workbench sets them.
RUN_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID")
#: Where ``workbench mlflow ui`` serves the embedded store by default.
UI_PORT = 5000
_PARAM_LENGTH = 6000  # MLflow's limit on a param value


@dataclasses.dataclass(frozen=True)
class Target:
    """Where runs are tracked: the store's URI and the experiment's name."""

    uri: str
    experiment: str
    embedded: bool


def embedded_uri(home: Path) -> str:
    return f"sqlite:///{home / 'mlflow.db'}"


def artifact_root(home: Path) -> Path:
    return home / "mlartifacts"


def target(settings: Settings, *, track: bool = False) -> Target | None:
    """Where to track a launch; None when tracking is off for it."""
    configured = settings.mlflow
    from_env = os.environ.get("MLFLOW_TRACKING_URI")
    if not (track or configured is not None or from_env):
        return None
    embedded = embedded_uri(settings.home)
    uri = (configured.tracking_uri if configured else None) or from_env or embedded
    experiment = (
        (configured.experiment if configured else None)
        or os.environ.get("MLFLOW_EXPERIMENT_NAME")
        or DEFAULT_EXPERIMENT
    )
    return Target(uri, experiment, uri == embedded)


def shown_uri(uri: str) -> str:
    """A tracking URI as it may be shown: without the credentials it may carry."""
    return track_end.shown_uri(uri)


def on_this_machine(uri: str) -> bool:
    """Whether a store is a file or database here (a pod on a cluster cannot reach it)."""
    scheme = uri.partition("://")[0] if "://" in uri else ""
    return scheme in ("", "file", "sqlite")


def require_mlflow(what: str = "--track") -> None:
    """Raises: SpecError, in one line, when MLflow is not installed."""
    if importlib.util.find_spec("mlflow") is None:
        raise SpecError(f"{what}: MLflow is not installed here", value="mlflow", hint=INSTALL)


def _warn(text: str) -> None:
    print(f"workbench: warning: {text}", file=sys.stderr, flush=True)


# -- launch --------------------------------------------------------------------------------------
def submit(
    settings: Settings,
    store: Store,
    backend: Backend,
    workload_id: str,
    spec: CommonSpec,
    payload: Payload,
    *,
    cwd: str | None,
) -> Workload:
    """``backend.submit``, as an MLflow run when tracking is on for ``spec``.

    Raises:
        SpecError: tracking asked for (``--track`` or the config) without MLflow installed,
            or an ``--env`` setting one of :data:`RUN_ENV`; nothing was created.
    """
    where = target(settings, track=spec.track)
    for name in RUN_ENV if where is not None else ():
        if name in spec.env:
            raise SpecError(
                f"--env {name} is set by workbench for a tracked workload",
                value=name,
                hint=f"drop {name} from --env, or set mlflow.tracking_uri in the config",
            )
    if isinstance(spec, ServeSpec):  # an MLflow model's version pinned, its registry in the env
        from .mlflow_models import prepare_spec

        spec = prepare_spec(settings, spec)
    if where is None:
        return backend.submit(workload_id, spec, payload)
    if not spec.track and settings.mlflow is None and importlib.util.find_spec("mlflow") is None:
        _warn(f"MLFLOW_TRACKING_URI is set but MLflow is not installed ({INSTALL}); the run is not tracked")
        return backend.submit(workload_id, spec, payload)
    require_mlflow()
    sweep = tracking_sweeps.current()
    tags = run_tags(settings, spec, payload, workload_id, backend.name, cwd)
    parent = None
    if sweep is not None:  # a point of a tracked sweep: a child of the sweep's run
        parent = sweep_run(where, settings, sweep, tags)
        if parent is None:  # said once for the whole sweep
            return backend.submit(workload_id, spec, payload)
        tags[tracking_sweeps.PARENT_TAG] = parent
    tracked = start_run(where, settings, workload_id, tags, run_params(spec, payload), "the run")
    if tracked is None:
        return backend.submit(workload_id, spec, payload)
    if parent is not None:
        tracked["parent_run_id"] = parent
    env = {"MLFLOW_TRACKING_URI": where.uri, "MLFLOW_RUN_ID": tracked["run_id"]}
    env["MLFLOW_EXPERIMENT_ID"] = tracked["experiment_id"]
    if backend.name != "local" and on_this_machine(where.uri):
        env = {}  # its pods cannot reach this machine's files: the run is ended from here
    extra = {**payload.extra, "env": {**payload.extra.get("env", {}), **env}, "info": {"mlflow": tracked}}
    try:
        workload = backend.submit(workload_id, spec, dataclasses.replace(payload, extra=extra))
    except BaseException:
        abandon(tracked)
        raise
    store.merge_info(workload.id, track_end.INFO_KEY, tracked)
    if sweep is not None:
        with sweep.lock:
            sweep.children.append(workload.id)
    return store.get(workload.id)


def sweep_run(
    where: Target, settings: Settings, sweep: tracking_sweeps.SweepParent, child_tags: dict[str, str]
) -> str | None:
    """The run id of ``sweep``'s parent run, made by its first tracked point; None (said once)
    when the store cannot be reached."""
    with sweep.lock:
        if sweep.run is None and not sweep.unreachable:
            tags = tracking_sweeps.parent_tags(sweep, child_tags)
            params = tracking_sweeps.parent_params(sweep)
            sweep.run = start_run(where, settings, sweep.name, tags, params, f"sweep {sweep.name}")
            sweep.unreachable = sweep.run is None
        return None if sweep.run is None else str(sweep.run["run_id"])


def start_run(
    where: Target, settings: Settings, name: str, tags: dict[str, str], params: Mapping[str, str], what: str
) -> dict[str, Any] | None:
    """Create run ``name`` with its tags and params: ``{"run_id", "experiment_id", "tracking_uri",
    "url"}``; None, and one warning line saying ``what`` is not tracked, when the store cannot
    be reached."""
    try:
        with track_end.short_requests():
            client, experiment_id = _experiment(where, settings)
            run = client.create_run(experiment_id, run_name=name, tags=tags)
            _log_params(client, run.info.run_id, params)
    except Exception as exc:
        _warn(
            f"MLflow at {track_end.shown_uri(where.uri)} unreachable ({track_end.reason(exc)}); "
            f"{what} is not tracked, metrics stay in provenance.json"
        )
        return None
    return _tracked(where, experiment_id, run.info.run_id)


def _experiment(where: Target, settings: Settings) -> tuple[Any, str]:
    """A client of the store and the id of the experiment (made when missing)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    # its first use makes the database, saying so at INFO level: not the user's business
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    location = None
    if where.embedded:  # private: the folder 0700, the database 0600
        private_dir(artifact_root(settings.home))
        create_private(settings.home / "mlflow.db")
        location = artifact_root(settings.home).as_uri()
    client = MlflowClient(tracking_uri=where.uri)
    experiment = client.get_experiment_by_name(where.experiment)
    if experiment is not None:
        return client, str(experiment.experiment_id)
    try:
        return client, str(client.create_experiment(where.experiment, artifact_location=location))
    except MlflowException:  # made by another launch meanwhile
        made = client.get_experiment_by_name(where.experiment)
        if made is None:
            raise
        return client, str(made.experiment_id)


def _log_params(client: Any, run_id: str, values: Mapping[str, str]) -> None:
    from mlflow.entities import Param

    params = [Param(key, value) for key, value in values.items()]
    for start in range(0, len(params), 100):  # MLflow takes at most 100 params a call
        client.log_batch(run_id, params=params[start : start + 100])


def _tracked(where: Target, experiment_id: str, run_id: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "experiment_id": experiment_id,
        "tracking_uri": where.uri,
        "url": run_url(where, experiment_id, run_id),
    }


def run_url(where: Target, experiment_id: str, run_id: str) -> str | None:
    """The run's page in MLflow's UI: the server's, or ``workbench mlflow ui``'s for the embedded store."""
    if where.uri.startswith(("http://", "https://")):
        base = track_end.shown_uri(where.uri).rstrip("/")
    elif where.embedded:
        base = f"http://127.0.0.1:{UI_PORT}"
    else:
        return None
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:_PARAM_LENGTH]


def run_params(spec: CommonSpec, payload: Payload) -> dict[str, str]:
    """The notebook's parameters (as the notebook gets them) and the spec's resources."""
    params: dict[str, str] = {}
    if isinstance(spec, NotebookSpec):
        given = (payload.extra.get("config") or {}).get("parameters", spec.parameters)
        params.update({str(name): _value(value) for name, value in dict(given).items()})
    resources = spec.resources.model_dump(mode="json", exclude_none=True)
    params.update({f"resources.{name}": _value(value) for name, value in resources.items()})
    return params


def _source(spec: CommonSpec, payload: Payload, cwd: str | None) -> tuple[str, str, dict[str, Any] | None]:
    """The source's name, MLflow source type and git state of its repository."""
    from .runtime.notebook import git_info

    if isinstance(spec, NotebookSpec):
        config = payload.extra.get("config") or {}
        source = str(config.get("source") or spec.notebook)
        git = config["git"] if "git" in config else git_info(Path(source).parent)
        return source, "NOTEBOOK", git
    script = getattr(spec, "script", None)
    folder = Path(cwd or os.getcwd())
    if script:
        path = (folder / script).resolve()
        return str(path), "JOB", git_info(path.parent)
    name = "cell" if getattr(spec, "code", None) is not None else str(getattr(spec, "kind", "pod"))
    return name, "JOB", git_info(folder)


def run_tags(
    settings: Settings,
    spec: CommonSpec,
    payload: Payload,
    workload_id: str,
    backend: str,
    cwd: str | None,
) -> dict[str, str]:
    """MLflow's system tags, set as MLflow users expect them (a kernel's argv would mislead it),
    and workbench's own."""
    source, source_type, git = _source(spec, payload, cwd)
    tags = {
        "mlflow.runName": workload_id,
        "mlflow.source.name": source,
        "mlflow.source.type": source_type,
        "mlflow.user": settings.owner,
        "workbench.workload_id": workload_id,
        "workbench.kind": str(getattr(spec, "kind", "pod")),
        "workbench.backend": backend,
        "workbench.image": spec.image or settings.image,
    }
    if git and git.get("commit"):
        tags["mlflow.source.git.commit"] = str(git["commit"])
        if git.get("dirty") is not None:
            tags["workbench.git.dirty"] = str(bool(git["dirty"])).lower()
    return tags


def abandon(tracked: Mapping[str, Any]) -> None:
    """Delete the run of a launch that failed: nothing of it is left behind."""
    try:
        from mlflow.tracking import MlflowClient

        with track_end.short_requests():
            MlflowClient(tracking_uri=str(tracked["tracking_uri"])).delete_run(str(tracked["run_id"]))
    except Exception:  # noqa: S110 - the launch's own error is what the user needs to read
        pass


# -- end -----------------------------------------------------------------------------------------
def end_if_final(store: Store, workload: Workload, logs: Callable[[], Iterator[str]]) -> Workload:
    """End the MLflow run of a final, tracked workload that nobody has ended yet (once).

    ``logs`` reads the workload's log when its run directory holds none (a cluster's pods).
    """
    tracked = workload.info.get(track_end.INFO_KEY)
    if not workload.done or not isinstance(tracked, dict) or not track_end.claimable(tracked):
        return workload
    if not track_end.claim(store, workload.id):
        return workload
    files = track_end.artifacts(Path(workload.run_dir))
    with tempfile.TemporaryDirectory(prefix="wb-track-") as folder:
        if not any(path.name == "output.log" for path in files):
            try:
                text = "".join(logs())
            except Exception:
                text = ""
            if text:
                path = Path(folder) / "output.log"
                path.write_text(text)
                files.append(path)
        problem = track_end.end_and_mark(store, workload, files)
    if problem:
        print(track_end.warning(tracked, problem), file=sys.stderr, flush=True)
    return store.get(workload.id)
