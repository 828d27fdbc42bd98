"""KServe's InferenceService for the API emulator: the CRD, and a stand-in of its RawDeployment mode.

    install_kserve(emulator)                    # the CRD and the stand-in controller
    install_kserve(emulator, controller=False)  # the CRD only: objects are stored, nothing runs

Without it the emulator has no ``serving.kserve.io`` group, as a cluster without KServe.
The CRD (``inferenceservices.serving.kserve.io``, v1beta1, short name ``isvc``, status
subresource) accepts any object (no schema). The stand-in reconciles each InferenceService as
KServe does in RawDeployment mode, for a custom predictor (``spec.predictor.containers``):

- a Deployment ``<name>-predictor`` whose pod spec is the predictor's pod fields (the first
  container named ``kserve-container`` when unnamed), labels ``serving.kserve.io/inferenceservice``,
  ``component: predictor``, ``app: isvc.<name>-predictor`` plus the predictor's ``labels``,
  ``minReplicas`` replicas (default 1); a ClusterIP Service ``<name>-predictor`` (port 80 → the
  container's first port, else 8080); an autoscaling/v2 HPA ``<name>-predictor`` when
  ``maxReplicas`` > ``minReplicas`` (stored only: the emulator has no HPA controller); all
  owned by the InferenceService; a changed predictor updates the Deployment (a rollout);
- status: ``url`` and ``address.url`` (``http://<name>-predictor.<ns>.svc.cluster.local``),
  conditions ``PredictorReady``/``IngressReady``/``Ready`` (Ready once the Deployment's rollout
  is complete and available), ``observedGeneration``.

Not emulated: model-format predictors (``sklearn``, ``model``… need ServingRuntimes: they get
PredictorReady False), transformers/explainers, and ``canaryTrafficPercent`` (KServe only
splits traffic in Serverless mode, on Knative; here the field is stored and ignored).
"""

from __future__ import annotations

import copy
from typing import Any

from . import validation
from .apps import owner_ref, semantic
from .cluster import now
from .errors import ApiError
from .resources import crd_document
from .store import Obj

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
KIND = "InferenceService"
ISVCS = (GROUP, PLURAL)
COMPONENT_FIELDS = {
    "minReplicas",
    "maxReplicas",
    "scaleTarget",
    "scaleMetric",
    "scaleMetricType",
    "containerConcurrency",
    "timeout",
    "canaryTrafficPercent",
    "logger",
    "batcher",
    "labels",
    "annotations",
    "deploymentStrategy",
    "autoScaling",
    "workerSpec",
}
FORMATS = {
    "model",
    "sklearn",
    "xgboost",
    "tensorflow",
    "pytorch",
    "triton",
    "onnx",
    "huggingface",
    "lightgbm",
}


def install_kserve(emulator: Any, controller: bool = True) -> KServe:
    """Register the InferenceService CRD on ``emulator`` (and run the stand-in on its loop)."""
    doc = crd_document(GROUP, VERSION, PLURAL, KIND, True)
    doc["spec"]["names"]["shortNames"] = ["isvc"]
    doc["spec"]["names"]["categories"] = ["kserve"]
    rt = emulator.registry.find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    emulator.call(lambda: emulator.cluster.create(rt, "", doc))
    operator = KServe(emulator)
    if controller:
        emulator.add_controller(operator.reconcile)
    return operator


def _condition(type_: str, ok: bool, reason: str = "", message: str = "", old: Obj | None = None) -> Obj:
    value = "True" if ok else "False"
    before = next((c for c in (old or {}).get("conditions") or [] if c.get("type") == type_), {})
    cond = {
        "type": type_,
        "status": value,
        "lastTransitionTime": before.get("lastTransitionTime") if before.get("status") == value else now(),
    }
    if not ok:
        cond.update(reason=reason, message=message)
    return cond


class KServe:
    def __init__(self, emulator: Any) -> None:
        self.em = emulator
        find = emulator.registry.find
        self.deploy_rt = find("apps", "v1", "deployments")
        self.svc_rt = find("", "v1", "services")
        self.hpa_rt = find("autoscaling", "v2", "horizontalpodautoscalers")

    def reconcile(self, emulator: Any) -> None:
        for isvc in emulator.store.list(ISVCS):
            try:
                self._sync(isvc)
            except ApiError:
                continue

    def _apply(self, rt: Any, namespace: str, doc: Obj, fields: tuple[str, ...]) -> Obj:
        """Create ``doc``, or update the stored one's ``fields`` where they differ."""
        cluster = self.em.cluster
        doc = copy.deepcopy(doc)
        validation.update_defaults(rt, doc)  # compare like with like
        current = cluster.store.get(rt.key, namespace, doc["metadata"]["name"])
        if current is None:
            return cluster.create(rt, namespace, doc)
        changed = copy.deepcopy(current)
        for field in fields:
            where, key = (changed["spec"], field[5:]) if field.startswith("spec.") else (changed, field)
            source = doc["spec"][key] if field.startswith("spec.") else doc[field]
            if semantic(where.get(key)) != semantic(source):
                where[key] = copy.deepcopy(source)
        if changed == current:
            return current
        return cluster.update(rt, namespace, current["metadata"]["name"], changed)

    def _sync(self, isvc: Obj) -> None:
        meta, predictor = isvc["metadata"], (isvc.get("spec") or {}).get("predictor") or {}
        ns, name = meta["namespace"], f"{meta['name']}-predictor"
        address = f"http://{name}.{ns}.svc.cluster.local"
        status: Obj = {
            "observedGeneration": meta.get("generation", 1),
            "url": address,
            "address": {"url": address},
        }
        old = isvc.get("status") or {}
        if FORMATS & predictor.keys() or not predictor.get("containers"):
            why = "the emulator runs custom predictors only (spec.predictor.containers)"
            ready = _condition("PredictorReady", False, "NoCustomPredictor", why, old)
            status["conditions"] = [
                _condition("IngressReady", True, old=old),
                ready,
                {**ready, "type": "Ready"},
            ]
            self._status(isvc, status)
            return
        pod_spec = copy.deepcopy({k: v for k, v in predictor.items() if k not in COMPONENT_FIELDS})
        first = pod_spec["containers"][0]
        first.setdefault("name", "kserve-container")
        labels = {
            **(meta.get("labels") or {}),
            **(predictor.get("labels") or {}),
            "serving.kserve.io/inferenceservice": meta["name"],
            "component": "predictor",
            "app": f"isvc.{name}",
        }
        owner = [owner_ref(isvc, f"{GROUP}/{VERSION}", KIND)]
        low = int(predictor.get("minReplicas") if predictor.get("minReplicas") is not None else 1)
        deployment = {
            "metadata": {"name": name, "labels": labels, "ownerReferences": owner},
            "spec": {
                "replicas": low,
                "selector": {"matchLabels": {"app": f"isvc.{name}"}},
                "template": {
                    "metadata": {"labels": labels, "annotations": dict(predictor.get("annotations") or {})},
                    "spec": pod_spec,
                },
            },
        }
        if predictor.get("deploymentStrategy"):
            deployment["spec"]["strategy"] = predictor["deploymentStrategy"]
        current = self._apply(
            self.deploy_rt, ns, deployment, ("spec.template", "spec.replicas", "spec.strategy")
        )
        port = ((first.get("ports") or [{}])[0]).get("containerPort", 8080)
        svc = {
            "metadata": {"name": name, "labels": labels, "ownerReferences": owner},
            "spec": {
                "selector": {"app": f"isvc.{name}"},
                "ports": [{"name": f"{name}", "port": 80, "targetPort": port, "protocol": "TCP"}],
            },
        }
        self._apply(self.svc_rt, ns, svc, ())
        high = predictor.get("maxReplicas")
        if high is not None and int(high) > low:
            metric = {"type": "Utilization", "averageUtilization": int(predictor.get("scaleTarget") or 80)}
            hpa = {
                "metadata": {"name": name, "labels": labels, "ownerReferences": owner},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                    "minReplicas": low,
                    "maxReplicas": int(high),
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": metric}}],
                },
            }
            self._apply(self.hpa_rt, ns, hpa, ("spec.minReplicas", "spec.maxReplicas", "spec.metrics"))
        dstatus = current.get("status") or {}
        conds = {c.get("type"): c for c in dstatus.get("conditions") or []}
        available = (conds.get("Available") or {}).get("status") == "True"
        progressing = conds.get("Progressing") or {}
        done = (
            available
            and progressing.get("reason") == "NewReplicaSetAvailable"
            and dstatus.get("observedGeneration") == current["metadata"].get("generation")
        )
        message = progressing.get("message") or "the predictor's deployment is not available yet"
        ready = _condition("PredictorReady", done, progressing.get("reason") or "Progressing", message, old)
        status["conditions"] = [_condition("IngressReady", True, old=old), ready, {**ready, "type": "Ready"}]
        self._status(isvc, status)

    def _status(self, isvc: Obj, status: Obj) -> None:
        if isvc.get("status") != status:
            changed = copy.deepcopy(isvc)
            changed["status"] = status
            rt = self.em.registry.find(GROUP, VERSION, PLURAL)
            self.em.cluster.write(rt, changed)
