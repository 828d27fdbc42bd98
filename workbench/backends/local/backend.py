"""The local backend: each workload is a detached, supervised process group.

Submitting stages the run directory, inserts the record (granting GPUs in the same
transaction), moves the staged directory into place and starts the supervisor. If any
step fails, what the earlier steps made is removed again, so bad input or a failed start
leaves neither a record nor a directory behind.
"""

from __future__ import annotations

import codecs
import errno
import json
import math
import os
import secrets
import select
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from ...config import Settings
from ...errors import BackendUnavailable, Conflict, NotFound, SpecError, StoreError
from ...private import exposed, make_private, private_dir, write_private
from ...runtime import guard, procs
from ...runtime import results as sealed
from ...spec import CommonSpec, NotebookSpec, RevisionChange
from ...store import ACTIVE, CANCELLED, FAILED, PENDING, Store, Workload
from ...units import format_bytes, parse_bytes
from ..base import INFO, OK, Check, DaskControl, Diagnosis, Payload, Probing, Serving
from .gpus import allocate, check_request, detect_gpus
from .kinds import Plan, plan_for

START_GRACE = 60.0  # seconds a record may stay pending before its supervisor must be up
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class _ExitWaiter:
    """Sleeps until a timeout or until the watched supervisor exits (a pidfd), whichever is first."""

    def __init__(self) -> None:
        self._fd: int | None = None

    def watch(self, pid: int | None, marker: str) -> None:
        if self._fd is not None or not pid or not procs.is_alive(pid, marker):
            return
        try:
            self._fd = os.pidfd_open(pid)
        except OSError:
            self._fd = None

    def wait(self, seconds: float) -> None:
        if self._fd is None:
            time.sleep(seconds)
            return
        ready, _, _ = select.select([self._fd], [], [], seconds)
        if ready:  # it has exited (its guard may still be writing the record): sleep from now on
            self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _os_failure(exc: OSError, workload_id: str | None, runs: Path) -> StoreError | BackendUnavailable:
    """One line for a file operation of a launch that failed: a full or read-only disk named."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreError(
            f"cannot write the run directory in {runs}: the disk is full (ENOSPC); nothing was launched",
            reason="full",
            value=workload_id or str(runs),
            hint=f"free space on that disk (`df -h {runs}`), then retry",
        )
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StoreError(
            f"cannot write the run directory in {runs}: it is read-only ({exc.strerror}); "
            "nothing was launched",
            reason="read-only",
            value=workload_id or str(runs),
            hint="make it writable, or set WORKBENCH_HOME to a writable folder",
        )
    return BackendUnavailable(
        f"could not start the local workload: {exc}",
        value=workload_id,
        hint=f"check that {runs} is writable",
    )


def _orphaned(final: Path) -> Conflict:
    return Conflict(
        f"the run directory {final} already exists, but the store has no record of it",
        value=str(final),
        hint=f"`workbench doctor --repair` rebuilds its record (then `workbench rm {final.name}` "
        "removes it), or choose another --name",
    )


class LocalBackend:
    """Runs workloads as processes on this machine."""

    name = "local"
    abilities: ClassVar[frozenset[type]] = frozenset({DaskControl, Diagnosis, Probing, Serving})

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._host_gpus: list[str] | None = None

    # -- GPUs ------------------------------------------------------------------------------
    @property
    def host_gpus(self) -> list[str]:
        if self._host_gpus is None:
            configured = self.settings.local_gpus
            self._host_gpus = list(configured) if configured is not None else detect_gpus()
        return self._host_gpus

    # -- submit ----------------------------------------------------------------------------
    def submit(self, workload_id: str, spec: CommonSpec, payload: Payload) -> Workload:
        plan = plan_for(workload_id, spec, payload)
        gpus = plan.gpus
        check_request(gpus, self.host_gpus)
        self._check_secrets(spec)
        if isinstance(spec, NotebookSpec) and spec.sign:  # --sign: the key exists before the run
            from ...runtime.notebook import ensure_key

            ensure_key(self.settings.home)
        runs = self._runs_dir()
        staging = runs / f".staging-{workload_id}-{os.getpid()}-{secrets.token_hex(4)}"
        final = runs / workload_id
        self._refuse_existing(final)
        try:
            self._stage(staging, spec, plan)
            record = Workload(
                id=workload_id,
                kind=str(getattr(spec, "kind", "pod")),
                backend=self.name,
                status=PENDING,
                spec=spec.model_dump(mode="json", exclude={"code"}),
                run_dir=str(final),
                created=time.time(),
                owner=self.settings.owner,
                session=payload.session,
                info={**plan.info, **payload.extra.get("info", {})},  # an MLflow run's (tracking.py)
            )

            def grant(store: Store) -> Workload:
                granted = allocate(gpus, self.host_gpus, store.gpus_in_use(self.name))
                return Workload(**{**record.to_dict(), "gpus": granted})

            record = self.store.insert(record, amend=grant, results_key=payload.results_key)
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, OSError):  # staging on a full or read-only disk
                raise _os_failure(exc, workload_id, runs) from exc
            raise
        try:
            try:
                os.rename(staging, final)  # never over a run directory: an empty one at most
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                raise _orphaned(final) from None
            self._write_launch(final, spec, payload, record.gpus, plan)
            make_private(final)  # 0700 / 0600 whatever the umask: launch.json holds argv and env
            self._start_supervisor(workload_id)
        except BaseException as exc:
            self.store.delete(workload_id)
            if not isinstance(exc, Conflict):  # a Conflict: the directory is someone else's
                shutil.rmtree(final, ignore_errors=True)
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, OSError):
                raise _os_failure(exc, workload_id, runs) from exc
            raise
        return self.store.get(workload_id)

    def _runs_dir(self) -> Path:
        try:
            return private_dir(self.settings.runs_dir)
        except OSError as exc:
            raise _os_failure(exc, None, self.settings.runs_dir) from exc

    def _refuse_existing(self, final: Path) -> None:
        """A run directory is never overwritten: its log and outputs may be all that is left."""
        if not final.exists():
            return
        try:
            self.store.get(final.name)
        except NotFound:
            raise _orphaned(final) from None
        # recorded: the store's own Conflict (the name is taken) comes from the insert

    def _check_secrets(self, spec: CommonSpec) -> None:
        """Locally, a secret is a file ``secrets/SECRET/KEY`` under WORKBENCH_HOME."""
        for ref in spec.secrets:
            path = self.settings.home / "secrets" / ref.secret / ref.key
            if not path.is_file():
                raise SpecError(
                    f"secret {ref.secret}:{ref.key} (for {ref.env}) does not exist on the local backend",
                    value=f"{ref.secret}:{ref.key}",
                    hint=f"write the value to {path} (mode 600)",
                )
            mode = exposed(path)
            if mode is not None:  # like ssh with a private key: say so, in one line
                print(
                    f"workbench: warning: secret file {path} is readable by others (mode {mode:04o}); "
                    f"run `chmod 600 {path}`",
                    file=sys.stderr,
                )

    def _stage(self, staging: Path, spec: CommonSpec, plan: Plan) -> None:
        private_dir(staging)  # before anything is written into it
        (staging / "payload").mkdir()
        (staging / "logs").mkdir()
        (staging / "outputs").mkdir()
        (staging / "logs" / "output.log").touch()
        plan.stage(staging)
        (staging / "spec.json").write_text(spec.model_dump_json(indent=2))

    def _write_launch(
        self, run_dir: Path, spec: CommonSpec, payload: Payload, gpus: list[str], plan: Plan
    ) -> None:
        env = {
            "PYTHONUNBUFFERED": "1",
            "CUDA_VISIBLE_DEVICES": ",".join(gpus),
            "WORKBENCH_WORKLOAD_ID": run_dir.name,
            "WORKBENCH_RUN_DIR": str(run_dir),
            "WORKBENCH_OUTPUT_DIR": str(run_dir / "outputs"),
            "WORKBENCH_HOME": str(self.settings.home),
            **plan.env,  # --output, --checkpoint-dir (see kinds.py)
        }
        if spec.resources.cpu:
            from ...units import parse_cpu

            threads = str(max(1, math.ceil(parse_cpu(spec.resources.cpu))))
            env.update({var: threads for var in _THREAD_VARS})
        env.update(spec.env)
        env.update(payload.extra.get("env", {}))  # MLFLOW_RUN_ID… of a tracked workload
        if isinstance(spec, NotebookSpec) and spec.sign:  # the runner signs the provenance manifest
            from ...runtime.notebook import SIGN_ENV

            env[SIGN_ENV] = "1"
        if plan.start_env is not None:  # what the runner's interpreter must start with
            env.update(plan.start_env({**os.environ, **env}))
        launch: dict[str, Any] = {
            "argv": [sys.executable, *(plan.start or ("-m", plan.module)), str(run_dir)],
            "cwd": payload.cwd,
            "env": env,
            "secrets": [ref.model_dump() for ref in spec.secrets],
            "timeout": spec.timeout,
            "kill_grace": self.settings.kill_grace,
            "usage_period": self.settings.usage_period,
            "usage_history": self.settings.usage_history,
            "gate": plan.gated,
        }
        if spec.resources.memory and plan.group_memory_limit:
            limit = parse_bytes(spec.resources.memory)
            launch.update(memory_limit=limit, memory_label=format_bytes(limit))
        write_private(run_dir / "launch.json", json.dumps(launch, indent=2))

    def _start_supervisor(self, workload_id: str) -> None:
        """Through the warm launcher when it is there, else the cold way (see :mod:`.launch`)."""
        from .launch import start_supervisor

        start_supervisor(str(self.store.path), workload_id, self.settings.runs_dir / workload_id)

    # -- state -----------------------------------------------------------------------------
    def refresh(self, workload: Workload) -> Workload:
        """Mark workloads whose supervisor vanished (machine restart, kill -9) as failed."""
        if workload.status not in ACTIVE:
            return workload
        if workload.supervisor_pid:
            if procs.is_alive(workload.supervisor_pid, workload.id) or self._guarded(workload):
                return workload  # the supervisor, or the guard that outlives it, records the end
            guard.stop_workload(str(self.store.path), workload.id, workload.run_dir, workload.pid)
            message = "the supervisor process ended without recording an outcome"
        elif time.time() - workload.created > START_GRACE:
            message = "the supervisor never started"
        else:
            return workload
        self.store.finish(workload.id, FAILED, exit_code=None, message=message)
        return self.store.get(workload.id)

    def _guarded(self, workload: Workload) -> bool:
        """Whether the workload's guard still runs (it records the end when the supervisor died)."""
        return guard.is_guarded(str(self.store.path), workload.id)

    def logs(self, workload: Workload, *, follow: bool = False) -> Iterator[str]:
        path = Path(workload.run_dir) / "logs" / "output.log"
        if not path.exists():
            raise NotFound(
                f"no logs for {workload.id!r}: {path.name} is missing from its run directory",
                value=workload.id,
            )
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        pause = 0.005
        waiter = _ExitWaiter()
        try:
            with path.open("rb") as fh:
                while True:
                    chunk = fh.read(65536)
                    if chunk:
                        pause = 0.005
                        yield decoder.decode(chunk)
                        continue
                    if not follow:
                        break
                    current = self.refresh(self.store.get(workload.id))
                    if current.done:
                        tail = decoder.decode(fh.read(), final=True)
                        if tail:
                            yield tail
                        break
                    waiter.watch(current.supervisor_pid, current.id)
                    waiter.wait(pause)  # wakes at once when the supervisor exits
                    pause = min(pause * 2, self.settings.poll_interval)
        finally:
            waiter.close()

    def cancel(self, workload: Workload) -> Workload:
        workload = self.refresh(workload)
        if workload.done:
            return workload
        self.store.update(workload.id, cancel_requested=1)
        if workload.status == PENDING and self.store.update(
            workload.id,
            only_if=[PENDING],
            status=CANCELLED,
            message="cancelled before it started",
            ended=time.time(),
        ):
            return self.store.get(workload.id)  # the supervisor sees this and never starts it
        signalled = procs.is_alive(workload.supervisor_pid, workload.id)
        if signalled:
            assert workload.supervisor_pid is not None
            os.kill(workload.supervisor_pid, signal.SIGTERM)
        if signalled or self._guarded(workload):  # the supervisor (or its guard) records the end
            deadline = time.monotonic() + self.settings.kill_grace + 5.0
            while time.monotonic() < deadline:
                current = self.store.get(workload.id)
                if current.done:
                    return current
                time.sleep(0.02)
        guard.stop_workload(str(self.store.path), workload.id, workload.run_dir, workload.pid)
        self.store.finish(workload.id, CANCELLED, exit_code=None, message="cancelled")
        return self.store.get(workload.id)

    def delete(self, workload: Workload) -> None:
        """Nothing outlives a finished local workload but its record and run directory."""

    # -- Dask ------------------------------------------------------------------------------
    def dask_address(self, workload: Workload, timeout: float = 60.0) -> Workload:
        from . import dask

        return dask.wait_for_address(self.store, self.refresh(workload), timeout)

    def scale(self, workload: Workload, workers: int) -> Workload:
        from . import dask

        return dask.scale(self.store, self.refresh(workload), self.host_gpus, workers)

    def adapt(self, workload: Workload, minimum: int, maximum: int) -> Workload:
        from . import dask

        return dask.adapt(self.store, self.refresh(workload), self.host_gpus, minimum, maximum)

    # -- endpoints (serve) -------------------------------------------------------------------
    def rollout(self, workload: Workload, change: RevisionChange, payload: Payload) -> Workload:
        from . import serve  # endpoints only: a pod's launch never loads it

        serve.rollout(self.refresh(workload), change, payload)
        return self.store.get(workload.id)

    def promote(self, workload: Workload) -> Workload:
        from . import serve  # endpoints only: a pod's launch never loads it

        serve.promote(self.refresh(workload))
        return self.store.get(workload.id)

    def undo(self, workload: Workload, to_revision: int | None) -> Workload:
        from . import serve  # endpoints only: a pod's launch never loads it

        serve.undo(self.refresh(workload), to_revision)
        return self.store.get(workload.id)

    def scale_endpoint(
        self, workload: Workload, replicas: int | None, autoscale: tuple[int, int] | None
    ) -> Workload:
        from . import serve  # endpoints only: a pod's launch never loads it

        serve.scale(self.refresh(workload), replicas, autoscale)
        return self.store.get(workload.id)

    def rollout_state(self, workload: Workload) -> dict[str, Any]:
        from . import serve  # endpoints only: a pod's launch never loads it

        return serve.state(self.refresh(workload))

    def history(self, workload: Workload) -> list[dict[str, Any]]:
        from . import serve  # endpoints only: a pod's launch never loads it

        return serve.history(workload)

    def request(
        self, workload: Workload, method: str, path: str, body: bytes | None, timeout: float
    ) -> tuple[int, bytes]:
        from . import serve  # endpoints only: a pod's launch never loads it

        return serve.request(self.store, workload, method, path, body, timeout)

    # -- doctor and the sidebar -------------------------------------------------------------
    @staticmethod
    def diagnose(settings: Settings, *, required: bool) -> list[Check]:
        import importlib.metadata

        gpus = list(settings.local_gpus) if settings.local_gpus is not None else detect_gpus()
        try:
            server = Check(OK, "model server", f"kserve {importlib.metadata.version('kserve')}")
        except importlib.metadata.PackageNotFoundError:
            missing = "kserve is not installed: pip install 'jupyter-ml-workbench[serve]'"
            server = Check(INFO, "model server", missing)
        return [Check(OK, "local GPUs", ", ".join(gpus) or "none"), server]

    @staticmethod
    def probe(settings: Settings, timeout: float) -> dict[str, Any]:
        gpus = list(settings.local_gpus) if settings.local_gpus is not None else detect_gpus()
        return {"available": True, "gpus": gpus}

    def results(self, workload: Workload, key: bytes) -> dict[str, Any]:
        return sealed.load_run(workload.id, workload.status, workload.run_dir, key)
