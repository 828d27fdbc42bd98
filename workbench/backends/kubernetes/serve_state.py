"""What the cluster says about an endpoint: the record's status and info, the rollout's state,
the revision history (mixed into :class:`~.serve.ServeEndpoints`).

The status of a serve workload: running while any replica is ready (the endpoint answers);
pending while none is (why: the pods' own words, or the model's error); failed when its first
revision cannot start (the model did not load): then its objects are removed, so nothing
crash-loops. A later revision that fails leaves the endpoint running on the previous one;
the failure shows in ``info["rollout"]``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...errors import WorkbenchError
from ...spec import ServeSpec
from ...store import ACTIVE, CANCELLED, FAILED, PENDING, RUNNING, Workload
from .serve_manifests import TRACK_LABEL
from .serve_revision import GENERATION_ANNOTATION, REVISION_ANNOTATION, canary_name
from .serve_status import (
    crash,
    current_revision,
    history_row,
    is_ready,
    meta,
    new_replica_set,
    notes_of,
    pods_of,
    progress,
    replica_sets_of,
    revision_number,
    template_of,
    traffic,
    without_hash,
)
from .status import pod_pending_reason

if TYPE_CHECKING:
    from ...store import Store
    from .backend import KubernetesBackend
    from .serve_kserve import KServeEndpoints


def proxy_path(namespace: str, service: str, port: str) -> str:
    return f"/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy"


def _generation(obj: Mapping[str, Any] | None) -> int:
    try:
        return int(notes_of(obj).get(GENERATION_ANNOTATION, 0))
    except ValueError:
        return 0


def _promoted(main: Mapping[str, Any], canary: Mapping[str, Any]) -> bool:
    """Whether the Deployment's template is the canary's (the canary was promoted)."""
    promoted = without_hash(template_of(canary))
    promoted.setdefault("metadata", {}).setdefault("labels", {})[TRACK_LABEL] = "stable"
    return without_hash(template_of(main)) == promoted


class EndpointState:
    """Reading an endpoint's Deployments, ReplicaSets and pods."""

    if TYPE_CHECKING:  # provided by ServeEndpoints
        backend: KubernetesBackend
        store: Store

        @property
        def client(self) -> Any: ...

        @property
        def tracker(self) -> Any: ...

        @property
        def kserve(self) -> KServeEndpoints: ...

        def is_kserve(self, workload: Workload) -> bool: ...

        def deployments(self, workload_id: str, *, fresh: bool = True) -> dict[str, dict[str, Any]]: ...

        def replica_sets(self, workload_id: str, *, fresh: bool = True) -> list[dict[str, Any]]: ...

        def delete_objects(self, workload: Workload) -> None: ...

    def initial_info(self, workload_id: str, spec: ServeSpec) -> dict[str, Any]:
        namespace = self.client.namespace
        service, port = (
            (f"{workload_id}-predictor", "80") if spec.operator == "kserve" else (workload_id, "http")
        )
        return {
            "url": f"http://{workload_id}.{namespace}.svc.cluster.local",
            "proxy_url": self.client.api.configuration.host + proxy_path(namespace, service, port),
            "model_name": spec.served_name(workload_id),
            "operator": spec.operator,
            "revision": 1,
            "canary": None,
            "traffic": {"1": 100},
            "ready": 0,
            "desired": spec.replicas,
            "rps": None,
            "generation": 1,
            "rollout": {"phase": "progressing", "message": "creating the endpoint"},
        }

    # -- observing -------------------------------------------------------------------------------------
    def observe(self, workload: Workload) -> dict[str, Any] | None:
        """The endpoint's state from its objects (None when its Deployment is gone)."""
        found = self.deployments(workload.id)
        main, canary = found.get(workload.id), found.get(canary_name(workload.id))
        if main is None:
            return None
        promoted = None
        if canary is not None and progress(main)[0] == "complete" and _promoted(main, canary):
            promoted, canary = canary, None  # its revision runs in the Deployment now: it goes
        owned = replica_sets_of(main, self.replica_sets(workload.id))
        pods = self.backend.pods(workload.id)
        revision = current_revision(main, owned)
        canary_revision = int(notes_of(canary).get(REVISION_ANNOTATION, 0)) if canary else None
        shares: Counter[int] = Counter()
        for rs in owned:
            shares[revision_number(rs)] += sum(1 for pod in pods_of(rs, pods) if is_ready(pod))
        canary_pods = [p for p in pods if (meta(p).get("labels") or {}).get(TRACK_LABEL) == "canary"]
        if canary is None:  # a promoted canary's pods, on their way out
            pods, canary_pods = [p for p in pods if p not in canary_pods], []
        if canary_revision is not None:
            shares[canary_revision] += sum(1 for pod in canary_pods if is_ready(pod))
        wanted = int((main.get("spec") or {}).get("replicas", 1))
        extra = int((canary or {}).get("spec", {}).get("replicas", 0)) if canary else 0
        split = traffic(shares) or traffic(
            {revision: wanted, **({canary_revision: extra} if canary_revision else {})}
        )
        awaited = int(workload.info.get("generation") or 0)
        phase, message = progress(main)
        if canary is not None and phase == "complete":
            phase, message = progress(canary)
            message = f"canary: {message}" if message else ""
        if _generation(main) < awaited:
            phase, message = "progressing", "waiting for the Deployment controller to see the change"
        failing = None
        if phase != "complete":
            failing = crash(pods_of(new_replica_set(main, owned), pods)) or crash(canary_pods)
        failed_revision = canary_revision if failing and failing[0] in canary_pods else revision
        if failing is not None or phase == "failed":
            line = failing[1] if failing else ""
            if failing and not line:
                line = self._log_line(str(meta(failing[0]).get("name")))
            detail = line or message
            message = (
                f"revision {failed_revision} failed: {detail}"
                if detail
                else f"revision {failed_revision} failed"
            )
            phase = "failed"
        if phase == "progressing" and not message.startswith("waiting"):
            waiting = [p for p in pods if (p.get("status") or {}).get("phase") == "Pending"]
            if waiting and pod_pending_reason(waiting[0]) != "starting":
                message = f"{message}; {pod_pending_reason(waiting[0])}"
        return {
            "main": main,
            "promoted": promoted,
            "generation": max(awaited, _generation(main)),
            "phase": phase,
            "message": message,
            "revision": revision,
            "canary": canary_revision,
            "traffic": split,
            "ready": sum(shares.values()),
            "desired": wanted + extra,
            "pending": next(
                (r for p in pods if not is_ready(p) and (r := pod_pending_reason(p)) != "starting"), ""
            ),
        }

    def _log_line(self, pod: str) -> str:
        """The last line a failed container printed (its previous run's, when it restarted);
        read once per pod, however often the endpoint is looked at."""
        seen: dict[str, str] = self.__dict__.setdefault("_last_lines", {})
        if not seen.get(pod):  # an empty log may fill in yet
            seen[pod] = self._read_last_line(pod)
        return seen[pod]

    def _read_last_line(self, pod: str) -> str:
        path = f"/api/v1/namespaces/{self.client.namespace}/pods/{pod}/log"
        for previous in ("true", None):
            try:
                response = self.client.request(
                    "GET",
                    path,
                    verb="get",
                    resource="pods/log",
                    query={"container": "main", "previous": previous, "tailLines": 20},
                    stream=True,
                )
                text = response.read().decode("utf-8", "replace")
                response.release_conn()
            except WorkbenchError:
                continue
            lines = [line.strip() for line in str(text).splitlines() if line.strip()]
            if lines:
                return lines[-1][:300]
        return ""

    # -- the record ------------------------------------------------------------------------------------
    def refresh(self, workload: Workload) -> Workload:
        if workload.status not in ACTIVE:
            return workload
        if self.is_kserve(workload):
            return self.kserve.refresh(workload)
        state = self.observe(workload)
        if state is None:
            if time.time() - workload.created < 5:
                return workload  # created a moment ago; the list may predate it
            status = CANCELLED if workload.cancel_requested else FAILED
            message = (
                "cancelled" if workload.cancel_requested else "the Deployment was deleted outside workbench"
            )
            self.store.finish(workload.id, status, exit_code=None, message=message)
            return self.store.get(workload.id)
        if state["promoted"] is not None:
            self.client.delete("Deployment", canary_name(workload.id))
        return self.record(workload, state)

    def record(self, workload: Workload, state: Mapping[str, Any]) -> Workload:
        """Store the status and info ``state`` says (shared with the KServe half)."""
        first = state["revision"] <= 1 and not state["canary"] and not workload.started
        if first and state["ready"] == 0 and state["phase"] == "failed":
            self.delete_objects(workload)  # the only revision cannot start: nothing is left crash-looping
            self.store.finish(workload.id, FAILED, exit_code=None, message=state["message"])
            return self.store.get(workload.id)
        keys = ("revision", "canary", "traffic", "ready", "desired", "generation")
        info = {**workload.info, **{k: state[k] for k in keys}, "rps": None}
        info["rollout"] = {"phase": state["phase"], "message": state["message"]}
        if state.get("url"):
            info["url"] = state["url"]
        fields: dict[str, Any] = {}
        if state["ready"]:
            status, message = RUNNING, ""
            if not workload.started:
                fields["started"] = time.time()
        else:
            status = PENDING
            message = (
                state["message"]
                if state["phase"] == "failed"
                else state["pending"] or "starting the model server"
            )
        if (workload.status, workload.message, workload.info) != (status, message, info) or fields:
            self.store.update(
                workload.id, only_if=ACTIVE, status=status, message=message, info=info, **fields
            )
        return self.store.get(workload.id)

    def rollout_state(self, workload: Workload) -> dict[str, Any]:
        self.tracker.watch()  # polled: from here on the caches are kept current by watches
        self.backend.tracker.watch()
        current = self.backend.refresh(self.store.get(workload.id))
        info = current.info
        rollout = info.get("rollout") or {}
        phase, message = rollout.get("phase", "progressing"), rollout.get("message", "")
        if current.done:
            phase, message = "failed", current.message or current.status
        return {
            "generation": info.get("generation", 1),
            "phase": phase,
            "message": message,
            "revision": info.get("revision"),
            "canary": info.get("canary"),
            "traffic": info.get("traffic", {}),
            "ready": info.get("ready", 0),
            "desired": info.get("desired", 0),
        }

    def history(self, workload: Workload) -> list[dict[str, Any]]:
        if self.is_kserve(workload):
            return self.kserve.history(workload)
        found = self.deployments(workload.id)
        main, canary = found.get(workload.id), found.get(canary_name(workload.id))
        rows = [history_row(rs) for rs in replica_sets_of(main, self.replica_sets(workload.id))]
        if canary is not None:
            row = history_row({**canary, "metadata": {**meta(canary), "annotations": {}}}, canary=True)
            rows.append({**row, "revision": int(notes_of(canary).get(REVISION_ANNOTATION, 0)),
                         "cause": notes_of(canary).get("kubernetes.io/change-cause", "")})  # fmt: skip
        return rows
