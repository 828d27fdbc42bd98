"""One revision of a ``serve`` workload on Kubernetes: its contents and its ConfigMap.

Each revision ``N`` of workload ``W`` keeps its code, ``meta.json`` (what
``workbench.runtime.serve_replica`` reads: entry, model name and URI, env, body limit) and
its ``--send`` inputs in the immutable ConfigMap ``W-r<N>``, mounted read-only as the folder
the replica serves. A rollout reads the current revision back (:func:`read_revision`),
changes it and writes the next one. Pure: no I/O.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import SpecError
from ...spec import RevisionChange, ServeSpec
from ..base import Payload
from .payload import INPUTS_KEY, META_KEY, payload_configmap
from .settings import LABEL_DOMAIN, OWNER_LABEL, KubeSettings, object_name

#: what ``kubectl rollout history`` shows as CHANGE-CAUSE (the controller copies it to the ReplicaSet)
CAUSE_ANNOTATION = "kubernetes.io/change-cause"
REVISION_ANNOTATION = f"{LABEL_DOMAIN}/revision"
MODEL_URI_ANNOTATION = f"{LABEL_DOMAIN}/model-uri"
#: bumped by every change workbench makes to an endpoint; the store's info says which one it awaits
GENERATION_ANNOTATION = f"{LABEL_DOMAIN}/generation"
#: KServe: the revisions the InferenceService went through (JSON), newest last
HISTORY_ANNOTATION = f"{LABEL_DOMAIN}/history"
HISTORY_LIMIT = 10


@dataclass(frozen=True)
class Revision:
    """One revision's contents: what its ConfigMap holds and what its pods run."""

    number: int
    code: str | bytes
    entry: str
    inputs: bytes | None = None
    model_uri: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None
    cause: str = ""
    argv0: str = "cell"
    args: tuple[str, ...] = ()


def first_revision(spec: ServeSpec, *, code: str | bytes, entry_name: str, inputs: bytes | None) -> Revision:
    """Revision 1, from the launch."""
    return Revision(
        1,
        code,
        entry_name,
        inputs,
        spec.model_uri,
        dict(spec.env),
        spec.image,
        f"serve {spec.script or 'cell'}",
        spec.script or "cell",
        tuple(spec.args),
    )


def configmap_name(workload_id: str, number: int) -> str:
    return f"{workload_id}-r{number}"


def canary_name(workload_id: str) -> str:
    return f"{workload_id}-canary"


def revision_configmap(
    workload_id: str, spec: ServeSpec, revision: Revision, labels: Mapping[str, str], settings: KubeSettings
) -> dict[str, Any]:
    """The immutable ConfigMap ``W-r<N>``: the code, ``meta.json`` (what the replica reads) and
    the ``--send`` inputs.

    Raises:
        SpecError: a file name taken by the payload, or a payload too large for a ConfigMap.
    """
    name = object_name(configmap_name(workload_id, revision.number), what="ConfigMap name", limit=253)
    if revision.entry in (META_KEY, INPUTS_KEY):
        raise SpecError(
            f"the model file cannot be called {revision.entry!r}; that name is taken in the payload",
            value=revision.entry,
            hint="rename the file",
        )
    meta = {
        "entry": revision.entry,
        "argv0": revision.argv0,
        "args": list(revision.args),
        "model_name": spec.served_name(workload_id),
        "model_uri": revision.model_uri,
        "env": dict(revision.env),
        "max_body": spec.max_body,
    }
    files: dict[str, str | bytes] = {
        revision.entry: revision.code,
        META_KEY: json.dumps(meta, sort_keys=True),
    }
    if revision.inputs is not None:
        files[INPUTS_KEY] = revision.inputs
    doc = payload_configmap(name, labels, files=files, settings=settings)
    doc["metadata"]["annotations"] = {
        REVISION_ANNOTATION: str(revision.number),
        CAUSE_ANNOTATION: revision.cause,
    }
    return doc


def read_revision(configmap: Mapping[str, Any], image: str | None) -> Revision:
    """The contents of a revision back from its ConfigMap (to change them in a rollout)."""
    meta_data = configmap.get("metadata") or {}
    files: dict[str, str | bytes] = dict((configmap.get("data") or {}).items())
    for key, value in (configmap.get("binaryData") or {}).items():
        files[key] = base64.b64decode(value)
    meta = json.loads(files.get(META_KEY) or "{}")
    entry = str(meta.get("entry", "cell.py"))
    inputs = files.get(INPUTS_KEY)
    return Revision(
        int((meta_data.get("annotations") or {}).get(REVISION_ANNOTATION) or 0),
        files.get(entry, ""),
        entry,
        inputs.encode() if isinstance(inputs, str) else inputs,
        meta.get("model_uri"),
        dict(meta.get("env") or {}),
        image,
        str((meta_data.get("annotations") or {}).get(CAUSE_ANNOTATION) or ""),
        str(meta.get("argv0", "cell")),
        tuple(meta.get("args") or ()),
    )


def main_annotations(revision: Revision, owner: str, generation: int = 1) -> dict[str, str]:
    notes = {CAUSE_ANNOTATION: revision.cause, GENERATION_ANNOTATION: str(generation)}
    if owner:  # the label is lossy (lower-cased, trimmed); keep who it was
        notes[OWNER_LABEL] = owner
    return notes


def history_entry(revision: Revision, created: str = "") -> dict[str, Any]:
    """One revision as the KServe history annotation keeps it."""
    return {
        "revision": revision.number,
        "configmap": revision.number,
        "cause": revision.cause,
        "model_uri": revision.model_uri,
        "image": revision.image,
        "created": created,
    }


def describe(change: RevisionChange, payload: Payload) -> str:
    """What a rollout changed, in a few words (the history's cause when none is given)."""
    parts = []
    if payload.code is not None:
        parts.append("cell")
    elif payload.script is not None:
        parts.append(Path(payload.script_name or change.script or "model.py").name)
    if change.model_uri is not None:
        parts.append(f"--model-uri {change.model_uri}")
    parts += [f"--env {key}" for key in sorted(change.env)]
    if change.image is not None:
        parts.append(f"--image {change.image}")
    if change.canary is not None and change.canary < 100:
        parts.append(f"--canary {change.canary}")
    return "rollout " + " ".join(parts)


def changed(base: Revision, change: RevisionChange, payload: Payload, number: int) -> Revision:
    """Revision ``number``: ``base`` changed by ``change`` (new code and its inputs from
    ``payload``; env merged over the base's; the rest kept)."""
    code, entry, inputs, argv0 = base.code, base.entry, base.inputs, base.argv0
    if payload.code is not None:
        code, entry, inputs, argv0 = payload.code, "cell.py", payload.inputs, "cell"
    elif payload.script is not None:
        entry = Path(payload.script_name or change.script or "model.py").name
        code, inputs, argv0 = payload.script, payload.inputs, change.script or entry
    return Revision(
        number,
        code,
        entry,
        inputs,
        change.model_uri if change.model_uri is not None else base.model_uri,
        {**base.env, **change.env},
        change.image or base.image,
        change.cause or describe(change, payload),
        argv0,
        base.args,
    )
