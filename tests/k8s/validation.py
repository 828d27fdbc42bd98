"""Defaulting and validation of created and updated objects (the parts tests are likely to hit)."""

from __future__ import annotations

import base64
import copy
import json
import re
import uuid
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from . import apps
from .errors import invalid
from .resources import ResourceType
from .selectors import DNS_LABEL, label_errors, name_errors

Obj = dict[str, Any]
_CM_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
MAX_CONFIG_BYTES = 1024 * 1024
APPS_KEYS = {apps.DEPLOYMENTS, apps.REPLICASETS, apps.HPAS, apps.PDBS}


def _pod_spec_defaults(spec: Obj, *, in_template: bool = False) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    if not in_template:
        spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("priority", 0)
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        image = str(container.get("image", ""))
        tag = image.rsplit("/", 1)[-1]
        latest = ":" not in tag or tag.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest and "@" not in image else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        resources = container.setdefault("resources", {})
        limits = resources.get("limits") or {}
        if limits:
            requests = resources.setdefault("requests", {})
            for name, value in limits.items():
                requests.setdefault(name, value)
    for volume in spec.get("volumes") or []:
        for source in ("configMap", "secret"):
            if source in volume:
                volume[source].setdefault("defaultMode", 420)


def _qos(spec: Obj) -> str:
    containers = spec.get("containers") or []
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        (r.get("limits") or {}).get(k) and (r.get("limits") or {}).get(k) == (r.get("requests") or {}).get(k)
        for r in resources
        for k in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


def apply_defaults(rt: ResourceType, obj: Obj) -> None:
    """Fill in what the real API server defaults on create."""
    meta = obj["metadata"]
    spec = obj.setdefault("spec", {}) if rt.plural in ("pods", "jobs", "cronjobs", "services") else None
    if rt.plural == "namespaces":
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj["status"] = {"phase": "Active"}
    elif rt.plural == "pods" and spec is not None:
        _pod_spec_defaults(spec)
        status = obj.setdefault("status", {})
        status.setdefault("phase", "Pending")
        status.setdefault("qosClass", _qos(spec))
    elif rt.plural == "jobs" and spec is not None:
        _job_defaults(obj, spec)
    elif rt.plural == "cronjobs" and spec is not None:
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
        _pod_spec_defaults((job_spec.get("template") or {}).setdefault("spec", {}), in_template=True)
    elif rt.plural == "services" and spec is not None:
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec.get("clusterIP") != "None":
            spec["clusterIP"] = f"10.96.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 2}"
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        obj.setdefault("status", {"loadBalancer": {}})
    elif rt.key in APPS_KEYS:
        apps.defaults(rt.plural, obj, _pod_spec_defaults)
    elif rt.plural == "secrets":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        data = obj.setdefault("data", {}) if string_data else obj.get("data")
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
    elif rt.plural == "customresourcedefinitions":
        names = (obj.get("spec") or {}).get("names") or {}
        names.setdefault("singular", str(names.get("kind", "")).lower())
        names.setdefault("listKind", f"{names.get('kind', '')}List")
        obj["status"] = {
            "acceptedNames": copy.deepcopy(names),
            "storedVersions": [v["name"] for v in obj["spec"].get("versions") or [] if v.get("storage")],
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                },
            ],
        }


def update_defaults(rt: ResourceType, obj: Obj) -> None:
    """The defaulting an update gets too (for the kinds whose controllers compare templates)."""
    if rt.key in APPS_KEYS:
        apps.defaults(rt.plural, obj, _pod_spec_defaults)


def _job_defaults(obj: Obj, spec: Obj) -> None:
    uid = obj["metadata"]["uid"]
    name = obj["metadata"]["name"]
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("manualSelector", None)
    if spec["manualSelector"] is None:
        spec.pop("manualSelector")
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    template = spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    if not spec.get("manualSelector"):
        labels.update(
            {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid,
                "job-name": name,
            }
        )
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    _pod_spec_defaults(template.setdefault("spec", {}), in_template=True)


def _config_size(obj: Obj) -> int:
    data = obj.get("data") or {}
    binary = obj.get("binaryData") or {}
    size = sum(len(k) + len(str(v).encode()) for k, v in data.items())
    return size + sum(
        len(k) + len(base64.b64decode(v)) if isinstance(v, str) else 0 for k, v in binary.items()
    )


def _pod_spec_errors(spec: Obj, prefix: str, kind: str) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    containers = spec.get("containers") or []
    if not containers:
        errors.append((f"{prefix}.containers", "Required value"))
    seen: set[str] = set()
    for index, container in enumerate([*(spec.get("initContainers") or []), *containers]):
        where = f"{prefix}.containers[{index}]"
        name = container.get("name") or ""
        if not name:
            errors.append((f"{where}.name", "Required value"))
        elif not DNS_LABEL.match(name) or len(name) > 63:
            errors.append((f"{where}.name", f'Invalid value: "{name}": must be a valid RFC 1123 label'))
        elif name in seen:
            errors.append((f"{where}.name", f'Duplicate value: "{name}"'))
        seen.add(name)
        if not container.get("image"):
            errors.append((f"{where}.image", "Required value"))
    policy = spec.get("restartPolicy")
    allowed = ("OnFailure", "Never") if kind == "Job" else ("Always", "OnFailure", "Never")
    if policy not in allowed:
        supported = ", ".join(json.dumps(a) for a in allowed)
        errors.append(
            (f"{prefix}.restartPolicy", f'Unsupported value: "{policy}": supported values: {supported}')
        )
    return errors


def validate(rt: ResourceType, obj: Obj, old: Obj | None = None) -> None:
    """Raise a 422 Invalid ApiError when the object breaks a rule the real server enforces."""
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    errors: list[tuple[str, str]] = []
    if not name:
        errors.append(("metadata.name", "Required value: name or generateName is required"))
    else:
        errors += [
            ("metadata.name", f'Invalid value: "{name}": {msg}') for msg in name_errors(name, rt.name_rule)
        ]
    errors += label_errors(meta.get("labels") or {}, "metadata.labels")
    if rt.plural in ("configmaps", "secrets"):
        for field in ("data", "binaryData"):
            for key in obj.get(field) or {}:
                if not _CM_KEY.match(key) or len(key) > 253:
                    errors.append(
                        (
                            f"{field}[{key}]",
                            f'Invalid value: "{key}": a valid config key must consist '
                            "of alphanumeric characters, '-', '_' or '.'",
                        )
                    )
        if _config_size(obj) > MAX_CONFIG_BYTES:
            errors.append(("", f"Too long: must have at most {MAX_CONFIG_BYTES} bytes"))
        if old is not None and old.get("immutable"):
            for field in ("data", "binaryData", "immutable"):
                if obj.get(field) != old.get(field):
                    errors.append((field, "Forbidden: field is immutable when `immutable` is set"))
    elif rt.plural == "pods":
        errors += _pod_spec_errors(obj.get("spec") or {}, "spec", "Pod")
    elif rt.plural == "jobs":
        spec = obj.get("spec") or {}
        errors += _pod_spec_errors(
            (spec.get("template") or {}).get("spec") or {}, "spec.template.spec", "Job"
        )
        if spec.get("completionMode") == "Indexed" and spec.get("completions") is None:
            errors.append(("spec.completions", "Required value: when completion mode is Indexed"))
        if len(name) > 63:
            errors.append(("metadata.name", f'Invalid value: "{name}": must be no more than 63 characters'))
    elif rt.plural == "cronjobs":
        spec = obj.get("spec") or {}
        template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
        errors += _cronjob_errors(obj)
        errors += _pod_spec_errors(template.get("spec") or {}, "spec.jobTemplate.spec.template.spec", "Job")
    elif rt.key in APPS_KEYS:
        template = (obj.get("spec") or {}).get("template")
        if template is not None:
            errors += _pod_spec_errors(template.get("spec") or {}, "spec.template.spec", rt.kind)
        errors += apps.errors(rt.plural, obj, old)
    elif rt.plural == "customresourcedefinitions":
        spec = obj.get("spec") or {}
        expected = f"{(spec.get('names') or {}).get('plural')}.{spec.get('group')}"
        if name != expected:
            errors.append(
                ("metadata.name", f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group')
            )
    if errors:
        raise invalid(rt.kind, rt.group, name, errors)


def _cronjob_errors(obj: Obj) -> list[tuple[str, str]]:
    """What the API server refuses in a CronJob (besides its pod template)."""
    errors: list[tuple[str, str]] = []
    name = (obj.get("metadata") or {}).get("name") or ""
    if len(name) > 52:
        errors.append(("metadata.name", f'Invalid value: "{name}": must be no more than 52 characters'))
    spec = obj.get("spec") or {}
    schedule = spec.get("schedule")
    if not schedule:
        errors.append(("spec.schedule", "Required value"))
    elif not str(schedule).startswith("@") and len(str(schedule).split()) != 5:
        found = len(str(schedule).split())
        errors.append(
            (
                "spec.schedule",
                f'Invalid value: "{schedule}": expected exactly 5 fields, found {found}: {schedule}',
            )
        )
    elif not croniter.is_valid(str(schedule)):
        errors.append(("spec.schedule", f'Invalid value: "{schedule}": unparseable cron expression'))
    zone = spec.get("timeZone")
    if zone is not None:
        try:
            ZoneInfo(str(zone))
        except (ValueError, KeyError, OSError):
            errors.append(("spec.timeZone", f'Invalid value: "{zone}": unknown time zone {zone}'))
    policy = spec.get("concurrencyPolicy")
    if policy not in ("Allow", "Forbid", "Replace"):
        errors.append(
            (
                "spec.concurrencyPolicy",
                f'Unsupported value: "{policy}": supported values: "Allow", "Forbid", "Replace"',
            )
        )
    return errors
