"""The objects of a ``serve`` workload (a model behind an endpoint), as plain dicts.

Pure functions like :mod:`.manifests` (no I/O, no clock, no randomness, no ``kubernetes``
import), with the same pod template: Pod Security *restricted* and the hardening of
DESIGN.md. A serve workload ``W`` is, in creation order:

- ``W-r1``: an immutable ConfigMap with revision 1's code, ``meta.json`` and ``--send``
  inputs (every later revision gets its own ``W-r<N>``), mounted read-only at
  ``/workbench/run/payload``, the folder the replica serves (``python -m
  workbench.runtime.serve_replica``);
- ``W``: a ClusterIP Service, port 80 (``http``) → 8080 on every ready pod of the workload;
- ``W``: a Deployment (RollingUpdate with maxSurge 25% and maxUnavailable 0, readiness on
  ``/v2/health/ready``, liveness on ``/v2/health/live`` after a startup probe that allows
  for loading the model, a preStop pause so endpoints drain before SIGTERM,
  ``revisionHistoryLimit`` 10); the pod binds the address the downward API gives
  (``status.podIP``);
- ``W``: a PodDisruptionBudget (maxUnavailable 1) when more than one replica may run, and
  an autoscaling/v2 HorizontalPodAutoscaler with ``--autoscale``.

A canary on plain Deployments is a second Deployment ``W-canary`` whose pods the Service
selects too: replica counts carry the split (:func:`~.serve_status.canary_replicas`). With ``--operator
kserve`` the workload is ``W-r1`` and a KServe InferenceService ``W`` (serving.kserve.io/v1beta1)
whose predictor runs the same container (:func:`inference_service`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from ...errors import SpecError
from ...spec import ServeSpec
from .hardening import NAMESPACE_NAME_LABEL, network_policy
from .manifests import CONTAINER_NAME, PAYLOAD_DIR, pod_template, queued_labels, refuse_reserved_env
from .serve_revision import (
    HISTORY_ANNOTATION,
    HISTORY_LIMIT,
    MODEL_URI_ANNOTATION,
    REVISION_ANNOTATION,
    Revision,
    canary_name,
    configmap_name,
    first_revision,
    history_entry,
    main_annotations,
    revision_configmap,
)
from .settings import ID_LABEL, LABEL_DOMAIN, KubeSettings, object_name, workload_labels

SERVE_PORT = 8080
SERVICE_PORT = 80
PORT_NAME = "http"
BIND_ENV = "WORKBENCH_BIND_HOST"
READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"
TRACK_LABEL = f"{LABEL_DOMAIN}/track"
STABLE, CANARY = "stable", "canary"
PROGRESS_DEADLINE_SECONDS = 300
PRESTOP_SECONDS = 5
KSERVE_GROUP = "serving.kserve.io"
KSERVE_API_VERSION = f"{KSERVE_GROUP}/v1beta1"
#: KServe runs a custom predictor's container only under this name
KSERVE_CONTAINER = "kserve-container"
#: where Knative's activator and the ingress gateway run (they reach the predictor's pods)
KNATIVE_NAMESPACES = ("knative-serving", "istio-system")
#: Knative's queue-proxy reaches the server on localhost: it listens on every address of its pod
KSERVE_BIND: dict[str, Any] = {"name": BIND_ENV, "value": "0.0.0.0"}  # noqa: S104
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_REPLICA = ["python", "-m", "workbench.runtime.serve_replica", PAYLOAD_DIR]


def check_names(workload_id: str) -> None:
    """Every name derived from the id is one Kubernetes accepts.

    Raises:
        SpecError: the id is too long, or does not start with a letter (it names the Service,
            an RFC 1035 label).
    """
    object_name(workload_id, what="workload id", limit=63)
    object_name(canary_name(workload_id), what="canary Deployment name", limit=253)
    if not _DNS_1035.match(workload_id):
        raise SpecError(
            f"workload id {workload_id!r} must start with a letter: it names the endpoint's "
            "Service (an RFC 1035 label)",
            value=workload_id,
            hint="use a --name such as 'iris-1'",
        )


def serve_labels(workload_id: str, owner: str, spec: ServeSpec) -> dict[str, str]:
    return workload_labels(workload_id, "serve", owner, spec.labels)


# -- a revision's pod template --------------------------------------------------------------------
def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": SERVE_PORT},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def serve_template(
    workload_id: str,
    spec: ServeSpec,
    revision: Revision,
    labels: Mapping[str, str],
    settings: KubeSettings,
    *,
    track: str = STABLE,
) -> dict[str, Any]:
    """The pod template of a revision: the replica serving ``W-r<N>`` on port 8080.

    Raises:
        SpecError: an ``--env`` that sets a variable workbench owns, or a contradictory spec.
    """
    revised = spec.model_copy(update={"env": dict(revision.env), "image": revision.image or spec.image})
    refuse_reserved_env(revised, (BIND_ENV,), "workbench for every serve replica")
    pod_labels = {**labels, TRACK_LABEL: track}
    name = configmap_name(workload_id, revision.number)
    template = pod_template(revised, workload_id, pod_labels, configmap=name, settings=settings)
    if revision.model_uri:
        template["metadata"]["annotations"] = {MODEL_URI_ANNOTATION: revision.model_uri}
    pod = template["spec"]
    pod["restartPolicy"] = "Always"
    container = pod["containers"][0]
    container["command"] = [*_REPLICA, "--host", f"$({BIND_ENV})", "--port", str(SERVE_PORT)]
    bind = {"name": BIND_ENV, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    container["env"] = sorted([*container["env"], bind], key=lambda entry: str(entry["name"]))
    container["ports"] = [{"name": PORT_NAME, "containerPort": SERVE_PORT, "protocol": "TCP"}]
    # loading a model may take minutes: liveness starts only once the server answers
    container["startupProbe"] = _probe(LIVE_PATH, period=2, failures=PROGRESS_DEADLINE_SECONDS // 2)
    container["readinessProbe"] = _probe(READY_PATH, period=2, failures=2)
    container["livenessProbe"] = _probe(LIVE_PATH, period=10, failures=3)
    # the endpoints drop the pod first, then it stops: no request reaches a closing server
    pause = (
        {"sleep": {"seconds": PRESTOP_SECONDS}}
        if settings.supports(1, 30)
        else {"exec": {"command": ["sleep", str(PRESTOP_SECONDS)]}}
    )
    container["lifecycle"] = {"preStop": pause}
    # a model that fails to load says why in its last lines (kubectl describe, rollout status)
    container["terminationMessagePolicy"] = "FallbackToLogsOnError"
    pod["terminationGracePeriodSeconds"] = 30 + PRESTOP_SECONDS
    return template


# -- the Deployment mode ----------------------------------------------------------------------------
def deployment(
    name: str,
    workload_id: str,
    spec: ServeSpec,
    template: dict[str, Any],
    labels: Mapping[str, str],
    settings: KubeSettings,
    *,
    replicas: int,
    annotations: Mapping[str, str],
) -> dict[str, Any]:
    """A Deployment of the pods of ``template`` (its track label joins the selector)."""
    track = template["metadata"]["labels"][TRACK_LABEL]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": settings.namespace,
            "labels": queued_labels(labels, spec),
            "annotations": dict(annotations),
        },
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": HISTORY_LIMIT,
            "progressDeadlineSeconds": PROGRESS_DEADLINE_SECONDS,
            "selector": {"matchLabels": {ID_LABEL: workload_id, TRACK_LABEL: track}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
            },
            "template": template,
        },
    }


def service(workload_id: str, labels: Mapping[str, str], settings: KubeSettings) -> dict[str, Any]:
    """The endpoint: a ClusterIP Service over every ready pod of the workload (both tracks)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": workload_id, "namespace": settings.namespace, "labels": dict(labels)},
        "spec": {
            "type": "ClusterIP",
            "selector": {ID_LABEL: workload_id},
            "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "targetPort": SERVE_PORT, "protocol": "TCP"}],
        },
    }


def autoscaler(
    workload_id: str, minimum: int, maximum: int, labels: Mapping[str, str], settings: KubeSettings
) -> dict[str, Any]:
    """An autoscaling/v2 HorizontalPodAutoscaler of the Deployment, on CPU utilisation (the
    in-flight concurrency the local router scales on needs a custom metrics adapter here)."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": workload_id, "namespace": settings.namespace, "labels": dict(labels)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": workload_id},
            "minReplicas": minimum,
            "maxReplicas": maximum,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
                }
            ],
        },
    }


def disruption_budget(workload_id: str, labels: Mapping[str, str], settings: KubeSettings) -> dict[str, Any]:
    """A PodDisruptionBudget: node drains take the endpoint's pods one at a time."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": workload_id, "namespace": settings.namespace, "labels": dict(labels)},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {ID_LABEL: workload_id}}},
    }


# -- KServe ---------------------------------------------------------------------------------------
def inference_service(
    workload_id: str,
    spec: ServeSpec,
    template: Mapping[str, Any],
    labels: Mapping[str, str],
    settings: KubeSettings,
    *,
    annotations: Mapping[str, str],
    canary: int | None = None,
) -> dict[str, Any]:
    """A KServe InferenceService whose custom predictor runs ``template``'s container.

    Knative (KServe's Serverless mode) sends traffic through a queue-proxy inside the pod, so
    the server binds every address, and what Knative refuses (a preStop hook, a startup
    probe) is left out; ``canary`` is ``canaryTrafficPercent``.
    """
    pod = copy.deepcopy(dict(template["spec"]))
    pod.pop("restartPolicy", None)
    pod.pop("terminationGracePeriodSeconds", None)
    container = pod["containers"][0]
    container["name"] = KSERVE_CONTAINER
    for key in ("lifecycle", "startupProbe"):
        container.pop(key, None)
    container["readinessProbe"] = {"httpGet": {"path": READY_PATH, "port": SERVE_PORT}, "periodSeconds": 2}
    # no startup probe under Knative: liveness itself allows for loading the model
    container["livenessProbe"] = _probe(LIVE_PATH, period=10, failures=PROGRESS_DEADLINE_SECONDS // 10)
    container["ports"] = [{"name": "http1", "containerPort": SERVE_PORT, "protocol": "TCP"}]
    container["env"] = [
        dict(KSERVE_BIND) if entry["name"] == BIND_ENV else entry for entry in container["env"]
    ]
    scale = spec.autoscale
    predictor: dict[str, Any] = {
        "minReplicas": scale.minimum if scale else spec.replicas,
        "maxReplicas": scale.maximum if scale else spec.replicas,
        "scaleMetric": "concurrency",
        "scaleTarget": max(1, math.ceil(spec.target_concurrency)),
        "labels": dict(template["metadata"]["labels"]),
    }
    if template["metadata"].get("annotations"):
        predictor["annotations"] = dict(template["metadata"]["annotations"])
    if canary is not None:
        predictor["canaryTrafficPercent"] = canary
    # RawDeployment mode rolls out as the Deployment mode does (Serverless mode ignores it)
    predictor["deploymentStrategy"] = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
    }
    predictor.update(pod)
    return {
        "apiVersion": KSERVE_API_VERSION,
        "kind": "InferenceService",
        "metadata": {
            "name": workload_id,
            "namespace": settings.namespace,
            "labels": queued_labels(labels, spec),
            "annotations": dict(annotations),
        },
        "spec": {"predictor": predictor},
    }


def serve_network_policy(
    workload_id: str, labels: Mapping[str, str], settings: KubeSettings, *, kserve: bool
) -> dict[str, Any]:
    """The workload's NetworkPolicy: its own pods, and the clients (``client_labels``) on the
    serving port; with KServe also Knative's activator and the ingress gateway."""
    plain = dataclasses.replace(settings, dask_operator_namespace=None)
    policy = network_policy(workload_id, labels, plain, client_ports=(SERVE_PORT,))
    if kserve:
        names = {"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": list(KNATIVE_NAMESPACES)}
        policy["spec"]["ingress"].append({"from": [{"namespaceSelector": {"matchExpressions": [names]}}]})
    return policy


def build_serve_manifests(
    workload_id: str,
    spec: ServeSpec,
    *,
    code: str | bytes,
    entry_name: str,
    inputs: bytes | None,
    owner: str,
    settings: KubeSettings,
) -> list[dict[str, Any]]:
    """The objects of a ``serve`` workload in creation order (its NetworkPolicy comes first,
    from :func:`~.build.build_manifests`): ``[ConfigMap W-r1, Service, Deployment, PDB?, HPA?]``,
    or with ``operator: kserve`` ``[ConfigMap W-r1, InferenceService]``.

    Raises:
        SpecError: a name Kubernetes would refuse, a payload too large for a ConfigMap, a
            reserved variable in ``--env``, or ``--timeout`` (an endpoint runs until cancelled).
    """
    check_names(workload_id)
    if spec.timeout is not None:
        raise SpecError(
            "--timeout does not apply to serve: an endpoint runs until `workbench cancel`",
            value=spec.timeout,
            hint="drop --timeout",
        )
    labels = serve_labels(workload_id, owner, spec)
    revision = first_revision(spec, code=code, entry_name=entry_name, inputs=inputs)
    configmap = revision_configmap(workload_id, spec, revision, labels, settings)
    template = serve_template(workload_id, spec, revision, labels, settings)
    notes = main_annotations(revision, owner)
    if spec.operator == "kserve":
        notes[HISTORY_ANNOTATION] = json.dumps([history_entry(revision)])
        notes[REVISION_ANNOTATION] = "1"
        return [
            configmap,
            inference_service(workload_id, spec, template, labels, settings, annotations=notes),
        ]
    docs = [
        configmap,
        service(workload_id, labels, settings),
        deployment(
            workload_id,
            workload_id,
            spec,
            template,
            labels,
            settings,
            replicas=spec.replicas,
            annotations=notes,
        ),
    ]
    most = spec.autoscale.maximum if spec.autoscale else spec.replicas
    if most > 1:
        docs.append(disruption_budget(workload_id, labels, settings))
    if spec.autoscale:
        docs.append(autoscaler(workload_id, spec.autoscale.minimum, spec.autoscale.maximum, labels, settings))
    return docs


__all__ = [
    "CANARY",
    "CONTAINER_NAME",
    "STABLE",
    "build_serve_manifests",
    "inference_service",
    "serve_template",
]
