"""The service's endpoint operations: rollouts, their status and history, undo, promotion,
scaling, and predictions through the endpoint (Open Inference Protocol v2 or KServe V1).

Mixed into :class:`workbench.service.Service`; every front end calls these.
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .backends.base import Serving, ability
from .errors import BackendUnavailable, SpecError, Timeout, WorkloadFailed
from .payloads import change_payload
from .spec import RevisionChange, check_adapt
from .spec_limits import shown
from .spec_serve import MAX_REPLICAS, is_mlflow_uri

if TYPE_CHECKING:
    from .backends.base import Backend
    from .config import Settings
    from .store import Store, Workload

#: numpy dtype kinds and sizes → Open Inference Protocol datatypes
_V2_TYPES = {
    "b1": "BOOL",
    "i1": "INT8",
    "i2": "INT16",
    "i4": "INT32",
    "i8": "INT64",
    "u1": "UINT8",
    "u2": "UINT16",
    "u4": "UINT32",
    "u8": "UINT64",
    "f2": "FP16",
    "f4": "FP32",
    "f8": "FP64",
}
_NUMPY_TYPES = {v: k for k, v in _V2_TYPES.items()}


def v2_tensor(name: str, value: Any) -> dict[str, Any]:
    """One Open Inference Protocol input tensor from an array-like."""
    import numpy as np

    array = np.asarray(value)
    if array.dtype.kind in "US":
        return {"name": name, "shape": list(array.shape), "datatype": "BYTES", "data": array.ravel().tolist()}
    datatype = _V2_TYPES.get(f"{array.dtype.kind}{array.dtype.itemsize}")
    if datatype is None:
        raise SpecError(
            f"cannot send a {array.dtype} array as a tensor",
            value=str(array.dtype),
            hint="convert it to a numeric or bool array (e.g. .astype('float32'))",
        )
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": array.ravel().tolist()}


def from_v2(output: Mapping[str, Any]) -> Any:
    """An array from one Open Inference Protocol output tensor."""
    import numpy as np

    datatype = str(output.get("datatype", ""))
    dtype = np.dtype(_NUMPY_TYPES[datatype]) if datatype in _NUMPY_TYPES else None
    data = np.asarray(output.get("data", []), dtype=dtype if dtype is not None else object)
    return data.reshape(output.get("shape") or data.shape)


def _call(
    backend: Serving, workload: Workload, method: str, path: str, body: Any, timeout: float
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    status, raw = backend.request(workload, method, path, data, timeout)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


class EndpointOperations:
    """Endpoint operations of :class:`~workbench.service.Service` (``serve`` workloads)."""

    if TYPE_CHECKING:  # provided by Service
        settings: Settings

        @property
        def store(self) -> Store: ...

        def backend(self, name: str) -> Backend: ...

        def get(self, name: str) -> Workload: ...

    def _serving(self, name: str) -> tuple[Serving, Workload]:
        workload = self.store.find(name)
        backend: Serving | None = ability(self.backend(workload.backend), Serving)
        if workload.kind != "serve" or backend is None:
            raise SpecError(
                f"{workload.id} is a {workload.kind} workload; rollouts and predictions apply to "
                "endpoints (serve workloads)",
                value=workload.id,
                hint="`workbench ls --kind serve` lists the endpoints",
            )
        return backend, workload

    def rollout(
        self,
        name: str,
        change: RevisionChange | Mapping[str, Any],
        *,
        inputs: Mapping[str, Any] | None = None,
        cwd: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Ship the next revision of endpoint ``name``: new code, model URI, env or image; with
        ``canary`` only that percent of requests reach it until :meth:`promote`.

        Returns the rollout's state; with ``wait``, once it completed.

        Raises:
            WorkloadFailed: the new revision failed (its model's error); the previous one
                keeps serving.
        """
        if not isinstance(change, RevisionChange):
            from pydantic import ValidationError

            from .spec import spec_error

            try:
                change = RevisionChange.model_validate(dict(change))
            except ValidationError as exc:
                raise spec_error(exc, "serve", RevisionChange) from None
        backend, workload = self._serving(name)
        if is_mlflow_uri(change.model_uri):  # its version pinned, its registry in the env
            from .mlflow_models import prepare_change

            change = prepare_change(self.settings, workload.backend, change)
        payload = change_payload(change, inputs or {}, cwd=cwd)
        backend.rollout(workload, change, payload)
        return self.rollout_status(workload.id, wait=wait, timeout=timeout, check=wait)

    def rollout_status(
        self, name: str, *, wait: bool = True, timeout: float | None = None, check: bool = True
    ) -> dict[str, Any]:
        """Where the endpoint's latest change stands (``phase``: progressing, complete or
        failed); with ``wait``, once it is complete or failed.

        Raises:
            WorkloadFailed: (with ``check``) the latest revision failed, or the endpoint ended.
            Timeout: still progressing after ``timeout`` seconds.
        """
        backend, workload = self._serving(name)
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.02
        while True:
            state = backend.rollout_state(self.store.find(workload.id))
            if state["phase"] == "failed" and check:
                # nothing ever served (no revision has traffic): the endpoint fails as a whole
                ended = self.store.find(workload.id).done or not state.get("revision")
                undo = f"the previous revision keeps serving; `workbench rollout undo {workload.id}` drops it"
                raise WorkloadFailed(
                    f"{workload.id} {'failed' if ended else 'rollout failed'}: "
                    f"{state.get('message') or 'no reason recorded'}",
                    workload_id=workload.id,
                    detail=state.get("message"),
                    hint=f"`workbench logs {workload.id}` shows the model server's output; "
                    + ("fix the model and serve it again" if ended else undo),
                )
            if state["phase"] in ("complete", "failed") or not wait:
                return state
            if deadline is not None and time.monotonic() >= deadline:
                raise Timeout(
                    f"the rollout of {workload.id} is still progressing after {timeout}s "
                    f"({state.get('ready', 0)} of {state.get('desired', '?')} replicas ready)",
                    value=workload.id,
                    hint=f"`workbench rollout status {workload.id}` keeps watching",
                )
            time.sleep(pause)
            pause = min(pause * 1.5, 0.25)

    def rollout_history(self, name: str) -> builtins.list[dict[str, Any]]:
        """The endpoint's revisions, oldest first (revision, created, cause, model, state)."""
        backend, workload = self._serving(name)
        return backend.history(self.get(workload.id))

    def undo(
        self, name: str, *, to_revision: int | None = None, wait: bool = True, timeout: float | None = None
    ) -> dict[str, Any]:
        """Go back to the previous revision (or ``to_revision``), as ``kubectl rollout undo``;
        during a canary, send everything back to the stable revision."""
        if to_revision is not None and (isinstance(to_revision, bool) or not isinstance(to_revision, int)
                                        or to_revision < 1):  # fmt: skip
            raise SpecError(
                f"--to-revision {shown(to_revision)} must be a revision number (1 or more)",
                value=to_revision,
                hint="`workbench rollout history NAME` lists them",
            )
        backend, workload = self._serving(name)
        backend.undo(workload, to_revision)
        return self.rollout_status(workload.id, wait=wait, timeout=timeout, check=wait)

    def promote(self, name: str, *, wait: bool = True, timeout: float | None = None) -> dict[str, Any]:
        """Send every request to the canary; the previous revision is drained and stopped."""
        backend, workload = self._serving(name)
        backend.promote(workload)
        return self.rollout_status(workload.id, wait=wait, timeout=timeout, check=wait)

    def scale_endpoint(
        self, name: str, replicas: int | None = None, autoscale: str | tuple[int, int] | None = None
    ) -> Workload:
        """A fixed number of replicas, or autoscaling between ``MIN:MAX``."""
        bounds = None
        if autoscale is not None:
            text = autoscale if isinstance(autoscale, str) else f"{autoscale[0]}:{autoscale[1]}"
            checked = check_adapt(text)
            if checked.minimum < 1 or checked.maximum > MAX_REPLICAS:
                raise SpecError(
                    f"--autoscale {text}: an endpoint keeps 1 to {MAX_REPLICAS} replicas",
                    value=text,
                    hint="e.g. 1:4",
                )
            bounds = (checked.minimum, checked.maximum)
        if replicas is not None and (isinstance(replicas, bool) or not isinstance(replicas, int)
                                     or not 1 <= replicas <= MAX_REPLICAS):  # fmt: skip
            raise SpecError(
                f"--replicas {shown(replicas)} must be a whole number from 1 to {MAX_REPLICAS}",
                value=replicas,
                hint="e.g. --replicas 2, or --autoscale 1:4",
            )
        if replicas is None and bounds is None:
            raise SpecError("give --replicas N or --autoscale MIN:MAX", hint="e.g. --replicas 2")
        backend, workload = self._serving(name)
        return backend.scale_endpoint(workload, replicas, bounds)

    def endpoint_request(
        self, name: str, method: str, path: str, body: Any = None, *, timeout: float = 60.0
    ) -> tuple[int, Any]:
        """One request to endpoint ``name`` (``body`` sent as JSON); the status and the
        decoded JSON answer (raw text when it is not JSON)."""
        backend, workload = self._serving(name)
        return _call(backend, workload, method, path, body, timeout)

    def predict(self, name: str, inputs: Any, *, protocol: str = "v2", timeout: float = 60.0) -> Any:
        """The model's answer for ``inputs`` (an array, or a dict of named arrays), through the
        endpoint: Open Inference Protocol v2 (arrays back, typed) or KServe V1 (``protocol="v1"``).

        Raises:
            SpecError: the model refused the request (4xx), with its message.
            BackendUnavailable: the endpoint cannot answer now (5xx, not reachable).
        """
        if protocol not in ("v1", "v2"):
            raise SpecError(
                f"protocol {protocol!r} must be v1 or v2", value=protocol, hint="e.g. protocol='v2'"
            )
        backend, workload = self._serving(name)
        model = str(workload.info.get("model_name") or workload.spec.get("model_name") or workload.id)
        if protocol == "v1":
            import numpy as np

            body = {"instances": np.asarray(inputs).tolist()}
            status, answer = _call(backend, workload, "POST", f"/v1/models/{model}:predict", body, timeout)
        else:
            named = inputs if isinstance(inputs, Mapping) else {"input-0": inputs}
            body = {"inputs": [v2_tensor(str(k), v) for k, v in named.items()]}
            status, answer = _call(backend, workload, "POST", f"/v2/models/{model}/infer", body, timeout)
        if status >= 400:
            message = answer.get("error") if isinstance(answer, dict) else answer
            error = SpecError if status < 500 else BackendUnavailable
            raise error(
                f"endpoint {workload.id} answered {status}: {str(message)[:300]}",
                value=workload.id,
                hint=f"`workbench logs {workload.id}` shows the model server's output",
            )
        if protocol == "v1":
            import numpy as np

            return np.asarray(answer["predictions"])
        outputs = [from_v2(o) for o in answer.get("outputs", [])]
        if len(outputs) == 1:
            return outputs[0]
        return {str(o.get("name")): arr for o, arr in zip(answer["outputs"], outputs, strict=True)}
