"""Endpoints with ``--operator kserve``: a KServe InferenceService (serving.kserve.io/v1beta1).

The predictor is a custom container running the same replica and ConfigMap ``W-r<N>`` as
the Deployment mode (:func:`~.serve_manifests.inference_service`). KServe (through Knative, in
its Serverless mode) keeps the revisions and splits the traffic, so the changes are KServe's
documented ones:

- rollout: the predictor gets the new revision; with ``--canary P`` also
  ``canaryTrafficPercent: P`` (the previously rolled-out revision keeps the rest);
- promote: ``canaryTrafficPercent`` removed (the latest revision takes everything);
- undo during a canary: ``canaryTrafficPercent: 0`` (KServe's rollback: everything back to
  the previous revision at once); otherwise the previous (or the chosen) revision's contents
  become a new revision, as for Deployments;
- the revisions workbench made are listed, newest last, in an annotation of the
  InferenceService (KServe keeps no history of its own that a client can read back).

Whether the cluster serves InferenceServices is asked of API discovery before anything is
created; without KServe the launch is refused in one line.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...errors import BackendUnavailable, Conflict, NotFound
from ...spec import RevisionChange
from ...store import CANCELLED, FAILED, Workload
from ..base import Payload
from .build import refuse_unsafe
from .client import Resource, register_resource
from .part import BackendPart
from .serve_changes import canary_in_the_way, json_pointer, payload_configmap_of
from .serve_manifests import (
    KSERVE_API_VERSION,
    KSERVE_CONTAINER,
    KSERVE_GROUP,
    inference_service,
    serve_network_policy,
    serve_template,
)
from .serve_revision import (
    CAUSE_ANNOTATION,
    GENERATION_ANNOTATION,
    HISTORY_ANNOTATION,
    HISTORY_LIMIT,
    REVISION_ANNOTATION,
    changed,
    configmap_name,
    history_entry,
    read_revision,
    revision_configmap,
)
from .serve_status import crash, is_ready, meta, notes_of, progress, template_of
from .settings import ID_LABEL, LABEL_DOMAIN
from .status import timestamp

if TYPE_CHECKING:
    from .serve import ServeEndpoints

INFERENCE_SERVICE = Resource("InferenceService", KSERVE_GROUP, "v1beta1", "inferenceservices", custom=True)
CANARY_ANNOTATION = f"{LABEL_DOMAIN}/canary"
KNATIVE_REVISION_LABEL = "serving.knative.dev/revision"
KSERVE_INSTALL = "https://kserve.github.io/website/latest/admin/serverless/serverless/"
_BLOCKED = ("BlockedByFailedLoad", "InvalidSpec")


def kserve_missing() -> BackendUnavailable:
    return BackendUnavailable(
        f"KServe is not installed: the cluster does not serve inferenceservices.{KSERVE_GROUP}/v1beta1",
        value="inferenceservices",
        hint=f"install KServe ({KSERVE_INSTALL}), or drop --operator kserve to serve with a Deployment",
    )


def _history(isvc: Mapping[str, Any]) -> list[dict[str, Any]]:
    try:
        entries = json.loads(notes_of(isvc).get(HISTORY_ANNOTATION) or "[]")
    except ValueError:
        return []
    return [e for e in entries if isinstance(e, dict)]


def _number(isvc: Mapping[str, Any] | None, key: str) -> int | None:
    value = notes_of(isvc).get(key)
    return int(value) if value and value.isdigit() else None


def _condition(isvc: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for cond in (isvc.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


class KServeEndpoints(BackendPart):
    """The KServe half of :class:`~.serve.ServeEndpoints`."""

    TRACKED = ("InferenceService",)

    def __init__(self, endpoints: ServeEndpoints) -> None:
        super().__init__(endpoints.backend)
        self.endpoints = endpoints
        self.store = endpoints.store
        register_resource(INFERENCE_SERVICE)

    def require(self) -> None:
        """Raises BackendUnavailable (one line) unless API discovery lists InferenceServices."""
        path = f"/apis/{KSERVE_GROUP}/v1beta1"
        try:
            found = self.client.request("GET", path, verb="get", resource=f"{KSERVE_GROUP}/v1beta1")
        except NotFound:
            raise kserve_missing() from None
        if not any(r.get("name") == "inferenceservices" for r in found.get("resources") or []):
            raise kserve_missing()

    def tracked(self) -> list[dict[str, Any]]:
        return list(self.tracker.objects("InferenceService")) if self._tracker else []

    def isvc(self, workload_id: str, *, relist: bool = False) -> dict[str, Any] | None:
        if relist:
            self.tracker.relist("InferenceService")
        found = self.tracker.objects("InferenceService", {ID_LABEL: workload_id}, fresh=not relist)
        return found[0] if found else None

    # -- state -----------------------------------------------------------------------------------------
    def observe(self, workload: Workload, isvc: Mapping[str, Any]) -> dict[str, Any]:
        status = isvc.get("status") or {}
        predictor = ((status.get("components") or {}).get("predictor")) or {}
        current = _number(isvc, REVISION_ANNOTATION) or 1
        canary = _number(isvc, CANARY_ANNOTATION)
        split: dict[str, int] = {}
        for entry in predictor.get("traffic") or []:
            revision = canary if entry.get("latestRevision") and canary else current
            split[str(revision)] = split.get(str(revision), 0) + int(entry.get("percent") or 0)
        pods = self.backend.pods(workload.id)
        ready = sum(1 for pod in pods if is_ready(pod))
        spec_predictor = (isvc.get("spec") or {}).get("predictor") or {}
        awaited = int(workload.info.get("generation") or 0)
        generation = int(notes_of(isvc).get(GENERATION_ANNOTATION) or 0)
        model = status.get("modelStatus") or {}
        failure = (model.get("lastFailureInfo") or {}).get("message")
        latest = predictor.get("latestCreatedRevision")
        # Serverless: the pods of Knative's latest revision; RawDeployment (no revisions): all of them
        failing = crash(
            p
            for p in pods
            if not latest or (meta(p).get("labels") or {}).get(KNATIVE_REVISION_LABEL) == latest
        )
        ready_cond = _condition(isvc, "Ready")
        # RawDeployment mode: KServe's Deployment says how its rollout goes (the InferenceService
        # stays Ready all along); it must run this predictor's revision first
        raw = self.endpoints.deployments(workload.id).get(f"{workload.id}-predictor")
        raw_phase, raw_message = progress(raw) if raw is not None else ("complete", "")
        if raw is not None and payload_configmap_of(template_of(raw)) != payload_configmap_of(
            {"spec": spec_predictor}
        ):
            raw_phase, raw_message = "progressing", "waiting for KServe to update its Deployment"
        if generation < awaited or int(status.get("observedGeneration") or 0) < int(
            meta(isvc).get("generation") or 1
        ):
            phase, message = "progressing", "waiting for KServe to see the change"
        elif model.get("transitionStatus") in _BLOCKED or failing:
            line = failure or (failing[1] if failing else "") or str(model.get("transitionStatus"))
            phase, message = "failed", f"revision {canary or current} failed: {line}"
        elif raw_phase != "complete":
            phase, message = raw_phase, raw_message
        elif ready_cond.get("status") == "True" and latest == predictor.get("latestReadyRevision"):
            phase, message = "complete", ""
        else:
            phase = "progressing"
            message = str(ready_cond.get("message") or "waiting for the InferenceService to be ready")
        address = (status.get("address") or {}).get("url") or status.get("url")
        return {
            "generation": max(awaited, generation),
            "phase": phase,
            "message": message,
            "revision": current,
            "canary": canary,
            "traffic": split or {str(current): 100},
            "ready": ready,
            "desired": int(spec_predictor.get("minReplicas") or 1),
            "pending": message if phase == "progressing" else "",
            "url": address,
        }

    def refresh(self, workload: Workload) -> Workload:
        isvc = self.isvc(workload.id)
        if isvc is None:
            if time.time() - workload.created < 5:
                return workload
            status = CANCELLED if workload.cancel_requested else FAILED
            message = (
                "cancelled"
                if workload.cancel_requested
                else "the InferenceService was deleted outside workbench"
            )
            self.store.finish(workload.id, status, exit_code=None, message=message)
            return self.store.get(workload.id)
        return self.endpoints.record(workload, self.observe(workload, isvc))

    def rollout_state(self, workload: Workload) -> dict[str, Any]:
        self.tracker.watch()
        return self.endpoints.rollout_state(workload)

    def history(self, workload: Workload) -> list[dict[str, Any]]:
        isvc = self.isvc(workload.id)
        canary = _number(isvc, CANARY_ANNOTATION)
        made = timestamp(meta(isvc).get("creationTimestamp"))  # the first revision's (no clock in builders)
        return [
            {
                "revision": e.get("revision"),
                "created": e.get("created") or made,
                "cause": e.get("cause", ""),
                "model_uri": e.get("model_uri"),
                "image": e.get("image"),
                "canary": e.get("revision") == canary,
            }
            for e in (_history(isvc) if isvc else [])
        ]

    # -- changes ---------------------------------------------------------------------------------------
    def _current(self, workload: Workload) -> dict[str, Any]:
        isvc = self.isvc(workload.id, relist=True)
        if isvc is None:
            raise Conflict(f"the InferenceService of {workload.id} is gone", value=workload.id)
        return isvc

    def _patch(
        self, workload: Workload, isvc: Mapping[str, Any], ops: list[dict[str, Any]], notes: dict[str, Any]
    ) -> Workload:
        generation = self.endpoints.next_generation(workload, isvc)
        notes = {**notes, GENERATION_ANNOTATION: str(generation)}
        for key, value in notes.items():
            path = json_pointer("metadata", "annotations", key)
            if value is None:
                if key in notes_of(isvc):
                    ops.append({"op": "remove", "path": path})
            else:
                ops.append({"op": "add", "path": path, "value": value})
        self.client.request(
            "PATCH",
            INFERENCE_SERVICE.path(self.client.namespace, workload.id),
            verb="patch",
            resource=INFERENCE_SERVICE.plural,
            body=ops,
            content_type="application/json-patch+json",
            custom=True,
        )
        return self.endpoints.accepted(workload, generation)

    def _base(self, workload: Workload, isvc: Mapping[str, Any], number: int) -> Any:
        entry = next((e for e in _history(isvc) if e.get("revision") == number), None)
        if entry is None:
            raise NotFound(f"revision {number} of {workload.id} is not in its history", value=number)
        name = configmap_name(workload.id, int(entry.get("configmap") or number))
        try:
            configmap = self.client.get("ConfigMap", name)
        except NotFound:
            raise Conflict(f"ConfigMap {name} of {workload.id} is gone", value=name) from None
        return read_revision(configmap, entry.get("image"))

    def _replace(
        self,
        workload: Workload,
        isvc: Mapping[str, Any],
        revision: Any,
        canary: int | None,
        notes: dict[str, Any],
        entry: dict[str, Any],
    ) -> Workload:
        """Point the predictor at ``revision`` (its ConfigMap must exist) and record ``entry``."""
        spec = self.endpoints.spec_of(workload)
        labels = self.endpoints.labels_of(workload, spec)
        kube = self.backend.kube
        template = serve_template(workload.id, spec, revision, labels, kube)
        doc = inference_service(workload.id, spec, template, labels, kube, annotations={}, canary=canary)
        refuse_unsafe([serve_network_policy(workload.id, labels, kube, kserve=True), doc])
        predictor = doc["spec"]["predictor"]
        current = (isvc.get("spec") or {}).get("predictor") or {}
        for key in ("minReplicas", "maxReplicas"):  # as scaled since the launch
            if key in current:
                predictor[key] = current[key]
        history = [*_history(isvc), {**entry, "created": time.time()}][-HISTORY_LIMIT:]
        notes = {**notes, HISTORY_ANNOTATION: json.dumps(history), CAUSE_ANNOTATION: entry["cause"]}
        return self._patch(
            workload, isvc, [{"op": "replace", "path": "/spec/predictor", "value": predictor}], notes
        )

    def rollout(self, workload: Workload, change: RevisionChange, payload: Payload) -> Workload:
        isvc = self._current(workload)
        if _number(isvc, CANARY_ANNOTATION):
            raise canary_in_the_way(workload.id, _number(isvc, CANARY_ANNOTATION))
        current = _number(isvc, REVISION_ANNOTATION) or 1
        number = max([e.get("revision") or 0 for e in _history(isvc)] + [current]) + 1
        revision = changed(self._base(workload, isvc, current), change, payload, number)
        spec = self.endpoints.spec_of(workload)
        configmap = revision_configmap(
            workload.id, spec, revision, self.endpoints.labels_of(workload, spec), self.backend.kube
        )
        self.endpoints.create_configmap(configmap, set())
        canary = change.canary if change.canary is not None and change.canary < 100 else None
        notes: dict[str, Any] = {REVISION_ANNOTATION: str(number), CANARY_ANNOTATION: None}
        if canary is not None:
            notes = {CANARY_ANNOTATION: str(number)}
        try:
            return self._replace(workload, isvc, revision, canary, notes, history_entry(revision))
        except BaseException:
            self.client.delete("ConfigMap", configmap["metadata"]["name"])
            raise

    def promote(self, workload: Workload) -> Workload:
        isvc = self._current(workload)
        canary = _number(isvc, CANARY_ANNOTATION)
        if canary is None:
            raise Conflict(
                f"endpoint {workload.id} has no canary to promote",
                value=workload.id,
                hint=f"roll one out with `workbench rollout {workload.id} FILE --canary 20`",
            )
        ops = [{"op": "remove", "path": "/spec/predictor/canaryTrafficPercent"}]
        return self._patch(workload, isvc, ops, {REVISION_ANNOTATION: str(canary), CANARY_ANNOTATION: None})

    def undo(self, workload: Workload, to_revision: int | None) -> Workload:
        isvc = self._current(workload)
        canary = _number(isvc, CANARY_ANNOTATION)
        if canary is not None and to_revision is None:  # KServe's rollback: the canary gets nothing
            ops = [{"op": "add", "path": "/spec/predictor/canaryTrafficPercent", "value": 0}]
            return self._patch(workload, isvc, ops, {CANARY_ANNOTATION: None})
        current = _number(isvc, REVISION_ANNOTATION) or 1
        entries = [e for e in _history(isvc) if e.get("revision") not in (canary, current)]
        if to_revision is None:
            older = [e for e in entries if int(e.get("revision") or 0) < current]
            if not older:
                raise Conflict("there is no previous revision to go back to", value=workload.id)
            to_revision = int(older[-1]["revision"])
        # the pods mount the ConfigMap of the revision they go back to; the history gets a new number
        revision = dataclasses.replace(
            self._base(workload, isvc, to_revision), cause=f"undo to revision {to_revision}"
        )
        number = max([e.get("revision") or 0 for e in _history(isvc)] + [current]) + 1
        notes = {REVISION_ANNOTATION: str(number), CANARY_ANNOTATION: None}
        return self._replace(
            workload, isvc, revision, None, notes, {**history_entry(revision), "revision": number}
        )

    def scale_endpoint(
        self, workload: Workload, replicas: int | None, autoscale: tuple[int, int] | None
    ) -> Workload:
        isvc = self._current(workload)
        low, high = autoscale if autoscale else (replicas or 1, replicas or 1)
        ops = [
            {"op": "add", "path": "/spec/predictor/minReplicas", "value": low},
            {"op": "add", "path": "/spec/predictor/maxReplicas", "value": high},
        ]
        return self._patch(workload, isvc, ops, {})

    def delete_objects(self, workload: Workload) -> None:
        self.client.delete(INFERENCE_SERVICE.kind, workload.id)


__all__ = ["INFERENCE_SERVICE", "KSERVE_API_VERSION", "KSERVE_CONTAINER", "KServeEndpoints", "kserve_missing"]
