"""What each kind needs on the local backend: its GPUs, its payload and its runtime module."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...config import folder_problem
from ...errors import SpecError
from ...runtime import OUTPUT_LOCATION_ENV, dask_workers
from ...runtime.cell import START
from ...runtime.publish import run_location
from ...spec import CodeSpec, CommonSpec, DaskSpec, NotebookSpec, PodSpec, ServeSpec, TrainSpec
from ...units import parse_bytes
from ..base import Payload
from .gpus import check_capacity


@dataclass(frozen=True)
class Plan:
    """How to run one workload locally.

    Attributes:
        gpus: how many GPUs to grant it.
        module: the ``workbench.runtime`` module the supervisor runs.
        stage: writes the payload into the (staging) run directory.
        group_memory_limit: whether the supervisor enforces ``resources.memory`` on the whole
            process group (a pod), or the runtime enforces it itself (Dask, per worker).
        info: what the store record keeps from the start (a notebook's published location).
        env: what the workload's environment gets besides the runtime's own variables
            (``WORKBENCH_OUTPUT_LOCATION``, ``WORKBENCH_CHECKPOINT_DIR``).
        start: the interpreter's arguments that start the runner (default ``-m module``).
        gated: the runner waits at :mod:`workbench.runtime.gate` before it runs any of the
            workload's code, so the supervisor may start it before moving it into its cgroup.
        start_env: given the environment the runner will have, what it must start with
            besides (a Dask cluster: the environment its workers need, see
            :mod:`workbench.runtime.dask_workers`).
    """

    gpus: int
    module: str
    stage: Callable[[Path], None]
    group_memory_limit: bool = True
    info: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    start: tuple[str, ...] = ()
    gated: bool = False
    start_env: Callable[[Mapping[str, str]], dict[str, str]] | None = None


def write_code(folder: Path, payload: Payload, script: str | None, meta: dict[str, Any]) -> None:
    """Write a cell or script, its ``--send`` inputs and ``meta.json`` into ``folder``."""
    if payload.code is not None:
        entry, argv0 = "cell.py", "cell"
        (folder / entry).write_text(payload.code)
    else:
        entry = Path(payload.script_name or "script.py").name
        argv0 = script or entry
        (folder / entry).write_bytes(payload.script or b"")
    if payload.inputs is not None:
        (folder / "inputs.pkl").write_bytes(payload.inputs)
    (folder / "meta.json").write_text(json.dumps({"entry": entry, "argv0": argv0, **meta}))


def _stage_code(spec: CodeSpec, payload: Payload) -> Callable[[Path], None]:
    def stage(run_dir: Path) -> None:
        write_code(run_dir / "payload", payload, spec.script, {"args": spec.args, "get": spec.get})

    return stage


def _stage_dask(spec: DaskSpec) -> Callable[[Path], None]:
    def stage(run_dir: Path) -> None:
        config = {
            "workers": spec.workers,
            "threads": spec.threads,
            "memory_limit": parse_bytes(spec.resources.memory) if spec.resources.memory else None,
            "gpus_per_worker": spec.resources.gpus,
            "idle_timeout": spec.idle_timeout,
            "adapt": spec.adapt.model_dump() if spec.adapt else None,
        }
        (run_dir / "payload" / "dask.json").write_text(json.dumps(config))

    return stage


def _stage_train(spec: TrainSpec, payload: Payload) -> Callable[[Path], None]:
    stage_code = _stage_code(spec, payload)

    def stage(run_dir: Path) -> None:
        stage_code(run_dir)
        config = {
            "nodes": spec.nodes,
            "procs_per_node": spec.procs_per_node,
            "max_restarts": spec.max_restarts,
            "gpus_per_node": spec.resources.gpus,
        }
        (run_dir / "payload" / "train.json").write_text(json.dumps(config))

    return stage


def _notebook_output(spec: NotebookSpec, payload: Payload) -> str | None:
    return _resolved(spec.output, payload)


def _resolved(location: str | None, payload: Payload) -> str | None:
    if location is not None and "://" not in location:  # a path: relative to where it was launched
        location = str((Path(payload.cwd or ".") / location).resolve())
    return location


def _code_env(workload_id: str, spec: PodSpec | TrainSpec, payload: Payload) -> dict[str, str]:
    """``--output`` (published to OUTPUT/ID by the runner) and ``--checkpoint-dir``, checked."""
    env: dict[str, str] = {}
    places = [("--output", spec.output, OUTPUT_LOCATION_ENV)]
    if isinstance(spec, TrainSpec):
        places.append(("--checkpoint-dir", spec.checkpoint_dir, "WORKBENCH_CHECKPOINT_DIR"))
    for flag_name, given, variable in places:
        if given is None:
            continue
        if "://" in given:
            _check_filesystem(given, flag_name)
        location = _resolved(given, payload)
        assert location is not None
        _check_output(given, location, flag_name)
        env[variable] = run_location(location, workload_id) if flag_name == "--output" else location
    return env


def _stage_notebook(output: str | None, payload: Payload) -> Callable[[Path], None]:
    config = {**payload.extra["config"], "output": output, "input": "payload"}

    def stage(run_dir: Path) -> None:
        (run_dir / "input.ipynb").write_bytes(payload.extra["notebook"])
        (run_dir / "payload" / "notebook.json").write_text(json.dumps(config, indent=2))

    return stage


def _check_output(given: str | None, output: str | None, flag_name: str = "--output") -> None:
    """``--output`` must be a folder the run can write, checked before anything is created."""
    if output is None or ("://" in output and not output.startswith("file://")):
        return
    path = Path(output.removeprefix("file://"))
    problem = folder_problem(path, writable=True)
    if problem:
        each = " (each run gets OUTPUT/NAME)" if flag_name == "--output" else ""
        raise SpecError(
            f"{flag_name} {given!r} {problem}",
            value=given,
            hint=f"give a folder you can write in{each}",
        )


def _check_kernel(spec: NotebookSpec, notebook: bytes) -> None:
    """The notebook's kernel (``--kernel``, else its metadata) must be installed on this machine."""
    name = spec.kernel
    if name is None:
        try:
            name = json.loads(notebook)["metadata"]["kernelspec"]["name"]
        except (ValueError, KeyError, TypeError):
            return  # reading the notebook said what is wrong with it already
    from jupyter_client.kernelspec import KernelSpecManager

    known = KernelSpecManager().find_kernel_specs()
    if name not in known:
        what = f"--kernel {name!r}" if spec.kernel else f"the kernel {name!r} named in {spec.notebook}"
        raise SpecError(
            f"{what} is not installed here (installed: {', '.join(sorted(known)) or 'none'})",
            value=name,
            hint="pass --kernel with an installed one, or install it (`jupyter kernelspec list`)",
        )


def _check_filesystem(location: str, flag_name: str = "--output") -> None:
    import fsspec

    try:
        fsspec.get_filesystem_class(location.partition("://")[0])
    except ImportError as exc:
        raise SpecError(
            f"{flag_name} {location!r}: {exc}",
            value=location,
            hint="install that package where the runs execute, or give a path",
        ) from None


def plan_for(workload_id: str, spec: CommonSpec, payload: Payload) -> Plan:
    """The local plan for ``spec``.

    Raises:
        SpecError: a kind the local backend does not run (yet).
    """
    check_capacity(spec.resources, "a Dask worker" if isinstance(spec, DaskSpec) else "each process")
    if isinstance(spec, PodSpec):
        env = _code_env(workload_id, spec, payload)
        stage = _stage_code(spec, payload)
        return Plan(spec.resources.gpus, "workbench.runtime.cell", stage, env=env, start=START, gated=True)
    if isinstance(spec, DaskSpec):
        most = spec.adapt.maximum if spec.adapt else spec.workers
        return Plan(
            spec.resources.gpus * max(most, spec.workers),
            "workbench.runtime.dask_cluster",
            _stage_dask(spec),
            group_memory_limit=False,
            start_env=dask_workers.start_environ,
        )
    if isinstance(spec, TrainSpec):
        return Plan(
            spec.resources.gpus * spec.nodes,
            "workbench.runtime.train_local",
            _stage_train(spec, payload),
            group_memory_limit=False,
            env=_code_env(workload_id, spec, payload),
        )
    if isinstance(spec, ServeSpec):
        from .serve import check_model_server, stage_endpoint

        check_model_server()

        most = spec.autoscale.maximum if spec.autoscale else spec.replicas
        return Plan(  # memory is per replica: the group of all replicas is not limited as one
            spec.resources.gpus * most,
            "workbench.runtime.serve_router",
            stage_endpoint(workload_id, spec, payload, _stage_code(spec, payload)),
            group_memory_limit=False,
            info={"model_name": spec.served_name(workload_id), "revision": 1, "generation": 1},
        )
    if isinstance(spec, NotebookSpec):
        if spec.schedule is not None:
            raise SpecError(
                f"--schedule {spec.schedule!r}: schedules need the kubernetes backend",
                value=spec.schedule,
                hint="add --backend kubernetes, or drop --schedule to run it once now",
            )
        if spec.output is not None and "://" in spec.output:
            _check_filesystem(spec.output)
        if "notebook" not in payload.extra:
            raise SpecError("a notebook run needs its notebook read first", value=spec.notebook)
        output = _notebook_output(spec, payload)
        _check_output(spec.output, output)
        _check_kernel(spec, payload.extra["notebook"])
        info = {"location": run_location(output, workload_id)} if output else {}
        return Plan(
            spec.resources.gpus, "workbench.runtime.notebook", _stage_notebook(output, payload), info=info
        )
    kind = getattr(spec, "kind", "?")
    raise SpecError(
        f"the local backend cannot run {kind!r} workloads yet",
        value=kind,
        hint="run a pod, dask, train, notebook or serve workload",
    )
