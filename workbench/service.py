"""The one API every front end calls: launch, get, list, logs, wait, cancel, delete.

It resolves profiles and settings into a validated spec, hands it to the backend, and
answers for workloads afterwards from the shared store, so the kernel, the CLI and the
Jupyter server all see the same workloads.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .backends.base import Backend, Payload, create_backend
from .config import Settings, load_settings, merge_profile
from .errors import SpecError, Timeout, WorkloadFailed
from .spec import CodeSpec, CommonSpec, parse_spec
from .store import FAILED, Store, Workload


class Service:
    """Launches and tracks workloads.

    Args:
        settings: resolved settings; by default read with the usual precedence.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        self._store: Store | None = None
        self._backends: dict[str, Backend] = {}

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.settings.db_path)
        return self._store

    def backend(self, name: str) -> Backend:
        if name not in self._backends:
            self._backends[name] = create_backend(name, self.settings, self.store)
        return self._backends[name]

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- specs -----------------------------------------------------------------------------
    def resolve(self, raw: Mapping[str, Any]) -> CommonSpec:
        """A validated spec from raw fields: profile merged in, defaults from settings.

        Raises:
            SpecError: unknown profile or any invalid field, in one line.
        """
        data = {k: v for k, v in raw.items() if v is not None}
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
        session: str | None = None,
        cwd: str | None = None,
    ) -> Workload:
        """Validate, then create a workload; nothing is created when anything is wrong.

        Args:
            spec: a spec, or raw fields to resolve.
            inputs: values for ``spec.send`` (the kernel's variables).
            session: the kernel session that launched it, for kernel-scoped cleanup.
            cwd: the working directory the code runs in (local backend).
        """
        if not isinstance(spec, CommonSpec):
            spec = self.resolve(spec)
        payload = self._payload(spec, inputs or {}, session, cwd)
        workload_id = spec.name or f"{getattr(spec, 'kind', 'wl')}-{secrets.token_hex(3)}"
        backend = self.backend(spec.backend or self.settings.backend)
        return backend.submit(workload_id, spec, payload)

    def _payload(
        self, spec: CommonSpec, inputs: Mapping[str, Any], session: str | None, cwd: str | None
    ) -> Payload:
        if not isinstance(spec, CodeSpec):
            return Payload(session=session, cwd=cwd)
        missing = [name for name in spec.send if name not in inputs]
        if missing:
            raise SpecError(
                f"--send {','.join(missing)}: no such variable in the kernel",
                value=",".join(missing),
                hint="define it before the cell, or drop it from --send",
            )
        blob = None
        if spec.send:
            import cloudpickle

            values = {}
            for name in spec.send:
                try:
                    cloudpickle.dumps(inputs[name])
                except Exception as exc:
                    raise SpecError(
                        f"--send {name}: cannot be pickled ({type(exc).__name__}: {exc})",
                        value=name,
                        hint="send plain data (arrays, frames, dicts) or rebuild it inside the cell",
                    ) from None
                values[name] = inputs[name]
            blob = cloudpickle.dumps(values)
        script = script_name = None
        if spec.script is not None:
            path = Path(cwd or ".") / spec.script
            try:
                script = path.read_bytes()
            except OSError as exc:
                raise SpecError(
                    f"cannot read script {spec.script!r}: {exc.strerror}",
                    value=spec.script,
                    hint="give the path of an existing .py file",
                ) from None
            script_name = path.name
        return Payload(
            code=spec.code,
            script=script,
            script_name=script_name,
            inputs=blob,
            cwd=cwd,
            session=session,
        )

    # -- queries ---------------------------------------------------------------------------
    def get(self, name: str) -> Workload:
        """A workload by name (or unique prefix), brought up to date."""
        workload = self.store.find(name)
        return self.backend(workload.backend).refresh(workload)

    def list(self, **filters: Any) -> list[Workload]:
        """Workloads, newest first (filters: kind, status, backend, session)."""
        return [self.backend(w.backend).refresh(w) for w in self.store.list(**filters)]

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
        if force and not workload.done:
            workload = backend.cancel(workload)
        backend.delete(workload)

    def results(self, name: str) -> dict[str, Any]:
        workload = self.store.find(name)
        return self.backend(workload.backend).results(workload)

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
