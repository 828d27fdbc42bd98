"""The one API every front end calls: launch, get, list, logs, wait, cancel, delete.

It resolves profiles and settings into a validated spec, hands it to the backend, and
answers for workloads afterwards from the shared store, so the kernel, the CLI and the
Jupyter server all see the same workloads.
"""

from __future__ import annotations

import builtins
import contextlib
import itertools
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import tracking
from .backends.base import (
    Backend,
    Check,
    DaskControl,
    Diagnosis,
    Discovery,
    Manifests,
    Payload,
    Probing,
    ability,
    backend_class,
    backend_names,
    create_backend,
)
from .config import Settings, load_settings, merge_profile
from .errors import (
    BackendUnavailable,
    Conflict,
    NotFound,
    PermissionDenied,
    SpecError,
    Timeout,
    WorkloadFailed,
)
from .payloads import code_payload, saved_launch
from .repair import open_store
from .scheduling import ScheduleOperations
from .serving import EndpointOperations
from .spec import CodeSpec, CommonSpec, NotebookSpec, check_adapt, check_workers, parse_spec, spec_mapping
from .store import FAILED, Store, Workload


class Service(EndpointOperations, ScheduleOperations):
    """Launches and tracks workloads; threads may share one service. ``settings``: resolved
    settings; by default read with the usual precedence."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        self._store: Store | None = None
        self._backends: dict[str, Backend] = {}
        self._lock = threading.RLock()  # the store and each backend are made once

    @property
    def store(self) -> Store:
        with self._lock:  # a store file made new first rebuilds the records of its run directories
            if self._store is None:
                self._store = open_store(self.settings.db_path, self.settings.runs_dir)
            return self._store

    def backend(self, name: str) -> Backend:
        with self._lock:
            if name not in self._backends:
                self._backends[name] = create_backend(name, self.settings, self.store)
            return self._backends[name]

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    # -- specs -----------------------------------------------------------------------------
    def resolve(self, raw: Mapping[str, Any]) -> CommonSpec:
        """A validated spec from raw fields: profile merged in, defaults from settings.

        Raises:
            SpecError: unknown profile or any invalid field, in one line.
        """
        data = {k: v for k, v in spec_mapping(raw).items() if v is not None}
        if data.get("profile"):
            data = merge_profile(data, self.settings.profile(str(data["profile"])))
        data.setdefault("backend", self.settings.backend)
        data.setdefault("image", self.settings.image)
        return parse_spec(data)

    # -- launch ----------------------------------------------------------------------------
    def launch(
        self,
        spec: CommonSpec | Mapping[str, Any],
        *,
        inputs: Mapping[str, Any] | None = None,
        pickled: bytes | None = None,
        session: str | None = None,
        cwd: str | None = None,
    ) -> Workload:
        """Validate, then create a workload; nothing is created when anything is wrong.

        Args:
            spec: a spec, or raw fields to resolve.
            inputs: values for ``spec.send`` (the kernel's variables); or ``pickled``, as pickled there.
            session: the kernel session that launched it, for kernel-scoped cleanup.
            cwd: the working directory the code runs in (local backend).
        """
        if not isinstance(spec, CommonSpec):
            spec = self.resolve(spec)
        payload = self._payload(spec, inputs or {}, session, cwd, pickled=pickled)
        if isinstance(spec, NotebookSpec):  # record the values as the notebook gets them (typed)
            spec = spec.model_copy(update={"parameters": payload.extra["config"]["parameters"]})
        workload_id = spec.name or f"{getattr(spec, 'kind', 'wl')}-{secrets.token_hex(3)}"
        backend = self.backend(spec.backend or self.settings.backend)
        # an MLflow run first when tracking is on (see tracking.py)
        return tracking.submit(self.settings, self.store, backend, workload_id, spec, payload, cwd=cwd)

    def _payload(
        self,
        spec: CommonSpec,
        inputs: Mapping[str, Any],
        session: str | None,
        cwd: str | None,
        *,
        seal_results: bool = True,
        pickled: bytes | None = None,
    ) -> Payload:
        if isinstance(spec, NotebookSpec):
            from .notebooks import notebook_payload

            return notebook_payload(spec, session=session, cwd=cwd, home=self.settings.home)
        if not isinstance(spec, CodeSpec):
            return Payload(session=session, cwd=cwd)
        return code_payload(
            spec, inputs, session=session, cwd=cwd, seal_results=seal_results, pickled=pickled
        )

    # -- queries ---------------------------------------------------------------------------
    def get(self, name: str) -> Workload:
        """A workload by name (or unique prefix), brought up to date."""
        workload = self.store.find(name)
        backend = self.backend(workload.backend)
        return self._ended(backend, backend.refresh(workload))

    def _ended(self, backend: Backend, workload: Workload) -> Workload:
        """``workload``, its MLflow run ended first if it is tracked and final (tracking.py)."""
        return tracking.end_if_final(self.store, workload, lambda: backend.logs(workload))

    def list(self, **filters: Any) -> list[Workload]:
        """Workloads, newest first (filters: kind, status, backend, session).

        Workloads found in the cluster by their labels join the list; a backend that cannot
        be reached leaves its workloads with their last known status.
        """
        in_use = {self.settings.backend, *self.store.backends()}
        for name in sorted(in_use):
            if filters.get("backend") not in (None, name):
                continue
            discovery: Discovery | None = ability(self._reachable(name), Discovery)
            if discovery is not None:
                with contextlib.suppress(BackendUnavailable):
                    discovery.discover()
        result = []
        for workload in self.store.list(**filters):
            backend = self._reachable(workload.backend)
            if backend is None:
                result.append(workload)
                continue
            try:
                result.append(self._ended(backend, backend.refresh(workload)))
            except BackendUnavailable:
                result.append(workload)
        return result

    def _reachable(self, name: str) -> Backend | None:
        try:
            return self.backend(name)
        except BackendUnavailable:
            return None

    def usage(self, name: str) -> dict[str, Any]:
        """What a workload uses: ``{"summary", "history", "source", "note"}`` (:mod:`.usage`)."""
        from .usage import report

        workload = self.store.find(name)
        return report(self.store, workload, self._reachable(workload.backend))

    def usage_summaries(self, workloads: Iterable[Workload]) -> dict[str, dict[str, Any]]:
        """Workload id → usage summary, for those of ``workloads`` that have one (one query)."""
        return self.store.usage_summaries(w.id for w in workloads)

    def logs(self, name: str, *, follow: bool = False) -> Iterator[str]:
        workload = self.store.find(name)
        return self.backend(workload.backend).logs(workload, follow=follow)

    def wait(self, name: str, *, timeout: float | None = None) -> Workload:
        """Block until the workload is final.

        Raises:
            Timeout: it was still running after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.005
        while True:
            workload = self.get(name)
            if workload.done:
                return workload
            if deadline is not None and time.monotonic() >= deadline:
                raise Timeout(
                    f"{workload.id} is still {workload.status} after {timeout}s",
                    value=workload.id,
                    hint=f"`workbench logs -f {workload.id}` to keep watching",
                )
            time.sleep(pause)
            pause = min(pause * 2, self.settings.poll_interval)

    def cancel(self, name: str) -> Workload:
        workload = self.store.find(name)
        return self.backend(workload.backend).cancel(workload)

    def delete(self, name: str, *, force: bool = False) -> None:
        workload = self.store.find(name)
        backend = self.backend(workload.backend)
        workload = backend.refresh(workload)
        if force and not workload.done:
            workload = backend.cancel(workload)
        if not workload.done:
            raise Conflict(
                f"{workload.id!r} is still {workload.status}",
                value=workload.id,
                hint=f"`workbench cancel {workload.id}` first, or rm --force",
            )
        backend.delete(workload)  # what the backend made for it (objects on a cluster)
        self.store.delete(workload.id)
        shutil.rmtree(workload.run_dir, ignore_errors=True)

    def results(self, name: str) -> dict[str, Any]:
        """The ``--get`` values of a succeeded workload; empty when it asked for none. Only what
        its own runner sealed with the launch's key is unpickled: without ``--get``, nothing."""
        workload = self.store.find(name)
        key = self.results_key(workload)
        return {} if key is None else self.backend(workload.backend).results(workload, key)

    def results_key(self, workload: Workload) -> bytes | None:
        """The key that seals ``workload``'s ``--get`` values; None when it asked for none.

        Raises:
            PermissionDenied: it asked for results, but this store has no key for them.
        """
        key = self.store.results_key(workload.id) if workload.spec.get("get") else None
        if key is None and workload.spec.get("get"):
            raise PermissionDenied(
                f"the --get results of {workload.id} cannot be authenticated here: "
                "their key stays in the store of the machine that launched it",
                value=workload.id,
                hint="read them from the kernel or machine that launched the workload",
            )
        return key

    # -- Dask ------------------------------------------------------------------------------
    def _dask_backend(self, name: str) -> tuple[DaskControl, Workload]:
        workload = self.store.find(name)
        backend: DaskControl | None = ability(self.backend(workload.backend), DaskControl)
        if workload.kind != "dask" or backend is None:
            raise SpecError(
                f"{workload.id} is a {workload.kind} workload; scaling applies to Dask clusters",
                value=workload.id,
                hint="`workbench dask ls` lists the clusters",
            )
        return backend, workload

    def dask_cluster(
        self, raw: Mapping[str, Any], *, session: str | None = None, cwd: str | None = None
    ) -> tuple[Workload, bool]:
        """The running cluster named in ``raw``, else a new one; True when it was started now.

        A finished cluster of that name is removed first, so the name can be used again.
        """
        name = raw.get("name")
        if name:
            try:
                existing = self.get(str(name))
            except NotFound:
                pass
            else:
                if not existing.done:
                    return existing, False
                self.delete(existing.id)
        return self.launch(raw, session=session, cwd=cwd), True

    def close_session(self, session: str) -> builtins.list[Workload]:
        """Cancel a kernel session's Dask clusters, except those started with ``--keep``."""
        return [
            self.cancel(workload.id)
            for workload in self.store.list(session=session, kind="dask", status=["pending", "running"])
            if not workload.spec.get("keep")
        ]

    def dask_address(self, name: str, *, timeout: float = 60.0) -> Workload:
        """The Dask cluster's record once its scheduler address is known (waits while it starts)."""
        backend, workload = self._dask_backend(name)
        result: Workload = backend.dask_address(workload, timeout)
        return result

    def scale(self, name: str, workers: int) -> Workload:
        """Set a Dask cluster's worker count (ends adaptive scaling)."""
        workers = check_workers(workers)
        backend, workload = self._dask_backend(name)
        result: Workload = backend.scale(workload, workers)
        return result

    def adapt(self, name: str, minimum: int, maximum: int) -> Workload:
        """Let a Dask cluster scale itself between ``minimum`` and ``maximum`` workers."""
        check_adapt({"minimum": minimum, "maximum": maximum})
        backend, workload = self._dask_backend(name)
        result: Workload = backend.adapt(workload, minimum, maximum)
        return result

    def dask_client(self, name: str, *, timeout: float = 60.0, asynchronous: bool = False) -> Any:
        """A ``distributed.Client`` connected to the named cluster."""
        from distributed import Client

        workload = self.dask_address(name, timeout=timeout)
        return Client(  # type: ignore[no-untyped-call]
            workload.info["address"], timeout=timeout, asynchronous=asynchronous
        )

    # -- notebooks -------------------------------------------------------------------------
    def sweep(
        self,
        spec: Mapping[str, Any],
        grid: Mapping[str, Sequence[Any]],
        *,
        parallel: int | None = None,
        cwd: str | None = None,
    ) -> builtins.list[Workload]:
        """Run a notebook spec once per point of ``grid`` (``{"lr": [0.1, 0.01]}``), at most
        ``parallel`` (default: the number of cores) at once; the final records, in grid order."""
        from .notebooks import run_sweep, sweep_runs
        from .tracking_sweeps import sweep_parent

        names = builtins.list(grid)
        combos = [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]
        raw = dict(spec_mapping(spec))
        runs = sweep_runs(raw, combos)
        with sweep_parent(self.store, raw, combos):  # MLflow's parent run, when tracked
            return run_sweep(self, runs, parallel=parallel or os.cpu_count() or 1, cwd=cwd)

    def run_directory(self, run: str) -> str:
        """Where a notebook run's files are: ``run`` itself when it is a URL or a folder with a
        manifest, else the run directory of the workload named ``run``."""
        from .notebooks import run_directory
        from .runtime.notebook import PROVENANCE

        if "://" in run or (Path(run) / PROVENANCE).is_file():
            return run
        return run_directory(self.store.find(run), notebook_only=True)

    def verify(self, run: str, *, require_signature: bool = False) -> builtins.list[str]:
        """Every mismatch between a notebook run (a name, a folder or a URL) and its provenance
        manifest, its signature included; empty when everything matches.

        A run recorded as signed needs a valid signature by this home's key (the only key
        trusted here); with ``require_signature`` an unsigned run is a mismatch too (its
        matching hashes prove integrity only, not who made the run).
        """
        from .notebooks import verify_run

        return verify_run(self.run_directory(run), self.settings.home, require_signature=require_signature)

    # -- manifests -------------------------------------------------------------------------
    def dry_run(
        self,
        spec: CommonSpec | Mapping[str, Any],
        *,
        inputs: Mapping[str, Any] | None = None,
        cwd: str | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """The Kubernetes objects a launch would create, without contacting any cluster."""
        if not isinstance(spec, CommonSpec):
            spec = self.resolve(spec)
        # no results key: a manifest printed for kubectl or GitOps carries no secret
        payload = self._payload(spec, inputs or {}, None, cwd, seal_results=False)
        workload_id = spec.name or f"{getattr(spec, 'kind', 'wl')}-{secrets.token_hex(3)}"
        return self._manifests().manifests(workload_id, spec, payload)

    def export(self, name: str) -> builtins.list[dict[str, Any]]:
        """The Kubernetes objects of a launched workload (local or not), rebuilt from its record."""

        workload = self.store.find(name)
        spec, payload = saved_launch(workload)
        return self._manifests().manifests(workload.id, spec, payload)

    def _manifests(self) -> Manifests:
        builder: Manifests | None = ability(self.backend("kubernetes"), Manifests)
        if builder is None:
            raise BackendUnavailable(
                "the kubernetes backend of this installation builds no manifests",
                value="kubernetes",
                hint="reinstall jupyter-ml-workbench",
            )
        return builder

    def rbac(
        self, namespace: str | None, service_account: str, *, cluster: bool
    ) -> builtins.list[dict[str, Any]]:
        """The least-privilege RBAC objects the Kubernetes backend needs in ``namespace``."""
        return self._manifests().rbac(namespace, service_account, cluster=cluster)

    # -- doctor and the sidebar ------------------------------------------------------------
    def diagnose(self) -> builtins.list[Check]:
        """Every backend's own checks for `workbench doctor`, the local one first."""
        checks: builtins.list[Check] = []
        for name in sorted(backend_names(), key=lambda n: (n != "local", n)):
            diagnosis: Diagnosis | None = ability(backend_class(name), Diagnosis)
            if diagnosis is not None:
                checks += diagnosis.diagnose(self.settings, required=name == self.settings.backend)
        return checks

    def probe(self, name: str, timeout: float) -> dict[str, Any]:
        """What the sidebar shows of backend ``name``: whether it can run work, its GPUs."""
        try:
            prober: Probing | None = ability(backend_class(name), Probing)
        except BackendUnavailable as exc:
            return {"available": False, "gpus": None, "error": exc.one_line()}
        if prober is None:
            return {"available": False, "gpus": None, "error": f"the {name!r} backend has no probe"}
        return prober.probe(self.settings, timeout)

    @staticmethod
    def check(workload: Workload) -> Workload:
        """Return a succeeded workload; raise :class:`WorkloadFailed` otherwise."""
        if workload.status == FAILED or workload.status == "cancelled":
            raise WorkloadFailed(
                f"{workload.id} {workload.status}: {workload.message or 'no reason recorded'}",
                workload_id=workload.id,
                exit_code=workload.exit_code,
                detail=workload.message,
                hint=f"`workbench logs {workload.id}` shows the whole output",
            )
        return workload
