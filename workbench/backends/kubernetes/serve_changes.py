"""The changes workbench makes to an endpoint's Deployments (mixed into :class:`~.serve.ServeEndpoints`).

Each reads the Deployments and ReplicaSets anew (a list of each), patches, and returns at
once with the record's ``info["generation"]`` raised: the Deployment carries the same number in
an annotation, so :meth:`~.serve_state.EndpointState.observe` knows whether the cluster has
seen the change yet. A patch of the pod template is a JSON patch that replaces it whole, as
``kubectl rollout undo`` does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import Conflict, NotFound, WorkbenchError
from ...spec import RevisionChange, ServeSpec
from ...store import ACTIVE, Workload
from ..base import Payload
from .build import refuse_unsafe
from .client import Resource
from .serve_manifests import (
    CANARY,
    STABLE,
    TRACK_LABEL,
    autoscaler,
    deployment,
    disruption_budget,
    serve_network_policy,
    serve_template,
)
from .serve_revision import (
    CAUSE_ANNOTATION,
    GENERATION_ANNOTATION,
    REVISION_ANNOTATION,
    Revision,
    canary_name,
    changed,
    read_revision,
    revision_configmap,
)
from .serve_status import (
    canary_replicas,
    notes_of,
    replica_sets_of,
    revision_number,
    rs_for_revision,
    template_of,
    undo_patch,
    without_hash,
)
from .settings import ID_LABEL

if TYPE_CHECKING:
    from ...store import Store
    from .backend import KubernetesBackend
    from .serve_kserve import KServeEndpoints

DEPLOYMENT = Resource("Deployment", "apps", "v1", "deployments")
Objects = tuple[dict[str, Any], dict[str, Any] | None, list[dict[str, Any]]]


def json_pointer(*parts: str) -> str:
    return "/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def annotate(notes: Mapping[str, str]) -> list[dict[str, Any]]:
    """JSON patch operations that set annotations (``add`` replaces one that is there)."""
    return [
        {"op": "add", "path": json_pointer("metadata", "annotations", k), "value": v}
        for k, v in notes.items()
    ]


def canary_in_the_way(workload_id: str, revision: object) -> Conflict:
    """The error of a change that needs the canary (revision ``revision``) decided first."""
    return Conflict(
        f"endpoint {workload_id} still has a canary (revision {revision})",
        value=workload_id,
        hint=f"`workbench rollout promote {workload_id}` or `workbench rollout undo {workload_id}` first",
    )


def payload_configmap_of(template: Mapping[str, Any]) -> str | None:
    for volume in (template.get("spec") or {}).get("volumes") or []:
        if volume.get("name") == "payload" and "configMap" in volume:
            return str(volume["configMap"].get("name"))
    return None


class EndpointChanges:
    """Rollout, promote, undo and scale of a Deployment endpoint."""

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

        def spec_of(self, workload: Workload) -> ServeSpec: ...

        def labels_of(self, workload: Workload, spec: ServeSpec) -> dict[str, str]: ...

        def deployments(self, workload_id: str, *, fresh: bool = True) -> dict[str, dict[str, Any]]: ...

        def replica_sets(self, workload_id: str, *, fresh: bool = True) -> list[dict[str, Any]]: ...

    # -- reading what a change starts from -----------------------------------------------------------
    def _current(self, workload: Workload) -> Objects:
        """The Deployment, its canary and its ReplicaSets, listed now.

        Raises:
            Conflict: the endpoint has ended or its Deployment is gone.
        """
        current = self.backend.refresh(workload)
        if current.status not in ACTIVE:
            raise Conflict(
                f"endpoint {current.id} is {current.status}: {current.message or 'no reason recorded'}",
                value=current.id,
                hint=f"serve it again with `workbench serve FILE --name {current.id}`",
            )
        self.tracker.relist("Deployment")
        self.tracker.relist("ReplicaSet")
        found = self.deployments(current.id, fresh=False)
        main = found.get(current.id)
        if main is None:
            raise Conflict(f"the Deployment of {current.id} is gone", value=current.id)
        owned = [dict(rs) for rs in replica_sets_of(main, self.replica_sets(current.id, fresh=False))]
        return main, found.get(canary_name(current.id)), owned

    def read_payload(self, workload_id: str, template: Mapping[str, Any]) -> Revision:
        """The contents of the revision a pod template serves, from its ConfigMap."""
        name = payload_configmap_of(template)
        containers = (template.get("spec") or {}).get("containers") or [{}]
        try:
            if name is None:
                raise NotFound("no payload ConfigMap")
            return read_revision(self.client.get("ConfigMap", name), containers[0].get("image"))
        except NotFound:
            raise Conflict(
                f"the payload ConfigMap {name} of {workload_id} is gone: its revision cannot be changed",
                value=name,
                hint=f"`workbench rollout undo {workload_id}` goes back to a revision that has one",
            ) from None

    def _tidy_configmaps(self, workload_id: str, keep: set[str]) -> int:
        """Delete the ``W-r<N>`` no revision kept uses any more; the next free ``N``."""
        configmaps, _ = self.client.list("ConfigMap", selector=f"{ID_LABEL}={workload_id}")
        prefix, highest = f"{workload_id}-r", 0
        for obj in configmaps:
            name = obj["metadata"]["name"]
            if not name.startswith(prefix) or not name[len(prefix) :].isdigit():
                continue
            highest = max(highest, int(name[len(prefix) :]))
            if name not in keep:
                with contextlib.suppress(WorkbenchError):
                    self.client.delete("ConfigMap", name)
        return highest + 1

    # -- writing -------------------------------------------------------------------------------------
    def next_generation(self, workload: Workload, *objects: Mapping[str, Any] | None) -> int:
        seen = [int(workload.info.get("generation") or 1)]
        seen += [int(notes_of(obj).get(GENERATION_ANNOTATION, 0) or 0) for obj in objects]
        return max(seen) + 1

    def _patch_main(self, workload_id: str, ops: list[dict[str, Any]]) -> None:
        self.client.request(
            "PATCH",
            DEPLOYMENT.path(self.client.namespace, workload_id),
            verb="patch",
            resource=DEPLOYMENT.plural,
            body=ops,
            content_type="application/json-patch+json",
        )

    def create_configmap(self, doc: dict[str, Any], in_use: set[str]) -> None:
        """Create ``W-r<N>``; one a rollout that failed halfway left behind is replaced."""
        try:
            self.client.create(doc)
        except Conflict:
            name = doc["metadata"]["name"]
            if name in in_use:
                raise
            self.client.delete("ConfigMap", name)
            self.client.create(doc)

    def accepted(self, workload: Workload, generation: int, **info: Any) -> Workload:
        progress = {"phase": "progressing", "message": "waiting for the change to be rolled out"}
        fresh = self.store.get(workload.id)
        self.store.update(
            workload.id, info={**fresh.info, **info, "generation": generation, "rollout": progress}
        )
        return self.store.get(workload.id)

    # -- the changes ---------------------------------------------------------------------------------
    def rollout(self, workload: Workload, change: RevisionChange, payload: Payload) -> Workload:
        if self.is_kserve(workload):
            return self.kserve.rollout(workload, change, payload)
        main, canary, owned = self._current(workload)
        if canary is not None:
            raise canary_in_the_way(workload.id, notes_of(canary).get(REVISION_ANNOTATION, "?"))
        spec, kube = self.spec_of(workload), self.backend.kube
        percent = change.canary if change.canary is not None and change.canary < 100 else None
        pods = canary_replicas(int(main["spec"].get("replicas", 1)), percent) if percent is not None else 0
        base = self.read_payload(workload.id, template_of(main))
        in_use = {name for obj in [main, *owned] if (name := payload_configmap_of(template_of(obj)))}
        number = max([self._tidy_configmaps(workload.id, in_use), *(revision_number(rs) + 1 for rs in owned)])
        revision = changed(base, change, payload, number)
        labels = self.labels_of(workload, spec)
        configmap = revision_configmap(workload.id, spec, revision, labels, kube)
        generation = self.next_generation(workload, main)
        notes = {CAUSE_ANNOTATION: revision.cause, GENERATION_ANNOTATION: str(generation)}
        template = serve_template(
            workload.id, spec, revision, labels, kube, track=STABLE if percent is None else CANARY
        )
        name = canary_name(workload.id) if percent is not None else workload.id
        if percent is not None:  # what the Deployment will number it when it is promoted
            upcoming = max([revision_number(main), *(revision_number(rs) for rs in owned)]) + 1
            notes[REVISION_ANNOTATION] = str(upcoming)
        count = pods if percent is not None else int(main["spec"].get("replicas", 1))
        doc = deployment(name, workload.id, spec, template, labels, kube, replicas=count, annotations=notes)
        refuse_unsafe([serve_network_policy(workload.id, labels, kube, kserve=False), configmap, doc])
        self.create_configmap(configmap, in_use)
        try:
            if percent is not None:
                self.client.create(doc)
                self._patch_main(workload.id, annotate({GENERATION_ANNOTATION: str(generation)}))
            else:
                self._patch_main(
                    workload.id,
                    [{"op": "replace", "path": "/spec/template", "value": template}, *annotate(notes)],
                )
        except BaseException:
            with contextlib.suppress(WorkbenchError):
                self.client.delete("ConfigMap", configmap["metadata"]["name"])
            raise
        self._keep_current(workload, revision)
        return self.accepted(workload, generation)

    def promote(self, workload: Workload) -> Workload:
        if self.is_kserve(workload):
            return self.kserve.promote(workload)
        main, canary, _ = self._current(workload)
        if canary is None:
            raise Conflict(
                f"endpoint {workload.id} has no canary to promote",
                value=workload.id,
                hint=f"roll one out with `workbench rollout {workload.id} FILE --canary 20`",
            )
        template = without_hash(template_of(canary))
        template["metadata"]["labels"][TRACK_LABEL] = STABLE
        generation = self.next_generation(workload, main, canary)
        notes = {
            CAUSE_ANNOTATION: notes_of(canary).get(CAUSE_ANNOTATION) or "promote the canary",
            GENERATION_ANNOTATION: str(generation),
        }
        # the canary keeps answering until the Deployment's pods all run its revision
        # (EndpointState.finish_promotion then deletes it)
        self._patch_main(
            workload.id, [{"op": "replace", "path": "/spec/template", "value": template}, *annotate(notes)]
        )
        return self.accepted(workload, generation)

    def undo(self, workload: Workload, to_revision: int | None) -> Workload:
        if self.is_kserve(workload):
            return self.kserve.undo(workload, to_revision)
        main, canary, owned = self._current(workload)
        if main["spec"].get("paused"):
            raise Conflict(
                f"the Deployment of {workload.id} is paused: it cannot be rolled back",
                value=workload.id,
                hint=f"resume it first with `kubectl rollout resume deployment/{workload.id}`",
            )
        generation = self.next_generation(workload, main, canary)
        if canary is not None:  # the canary goes; the stable revision takes every request again
            self.client.delete("Deployment", canary_name(workload.id))
            if to_revision is None:
                self._patch_main(workload.id, annotate({GENERATION_ANNOTATION: str(generation)}))
                return self.accepted(workload, generation)
        target = rs_for_revision(owned, to_revision)
        patch = undo_patch(main, target)
        if patch["template"] == without_hash(template_of(main)):  # kubectl: "skipped rollback"
            self._patch_main(workload.id, annotate({GENERATION_ANNOTATION: str(generation)}))
            return self.accepted(workload, generation)
        patch["annotations"][CAUSE_ANNOTATION] = f"undo to revision {revision_number(target)}"
        patch["annotations"][GENERATION_ANNOTATION] = str(generation)
        ops = [
            {"op": "replace", "path": "/spec/template", "value": patch["template"]},
            {"op": "replace", "path": "/metadata/annotations", "value": patch["annotations"]},
        ]
        self._patch_main(workload.id, ops)
        with contextlib.suppress(WorkbenchError):
            self._keep_current(workload, self.read_payload(workload.id, patch["template"]))
        return self.accepted(workload, generation)

    def scale_endpoint(
        self, workload: Workload, replicas: int | None, autoscale: tuple[int, int] | None
    ) -> Workload:
        if self.is_kserve(workload):
            return self.kserve.scale_endpoint(workload, replicas, autoscale)
        main, canary, _ = self._current(workload)
        labels, kube = self.labels_of(workload, self.spec_of(workload)), self.backend.kube
        if autoscale is not None:
            low, high = autoscale
            count = min(max(int(main["spec"].get("replicas", 1)), low), high)
            hpa = autoscaler(workload.id, low, high, labels, kube)
            try:
                self.client.patch("HorizontalPodAutoscaler", workload.id, {"spec": hpa["spec"]})
            except NotFound:
                self.client.create(hpa)
        else:
            count = high = int(replicas or 1)
            self.client.delete("HorizontalPodAutoscaler", workload.id)
        if high > 1:
            with contextlib.suppress(Conflict):
                self.client.create(disruption_budget(workload.id, labels, kube))
        else:
            self.client.delete("PodDisruptionBudget", workload.id)
        generation = self.next_generation(workload, main, canary)
        ops = [
            {"op": "replace", "path": "/spec/replicas", "value": count},
            *annotate({GENERATION_ANNOTATION: str(generation)}),
        ]
        self._patch_main(workload.id, ops)
        scale = list(autoscale) if autoscale else None
        return self.accepted(workload, generation, replicas=count, autoscale=scale)

    def _keep_current(self, workload: Workload, revision: Revision) -> None:
        """The run directory's payload follows the current revision (`workbench export` reads it)."""
        folder = Path(workload.run_dir) / "payload"
        with contextlib.suppress(OSError):
            if folder.is_dir():
                for old in folder.iterdir():
                    old.unlink()
                code = revision.code if isinstance(revision.code, bytes) else revision.code.encode()
                (folder / revision.entry).write_bytes(code)
                if revision.inputs is not None:
                    (folder / "inputs.pkl").write_bytes(revision.inputs)
