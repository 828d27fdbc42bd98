"""Checks for what kubernetes-validate cannot see in a manifest.

kubernetes-validate (strict) checks fields and types against one Kubernetes version's
OpenAPI schema. It passes bad quantities (``"4 gigs"``), wrong enum case (``medium:
memory``), bad label syntax, a GPU request that differs from its limit, and every Pod
Security violation. The API server or the admission controller would refuse those only
when the workload is launched. On top of *restricted*, :func:`check_hardened` holds every pod
to the rules of DESIGN.md (read-only root filesystem, uid/gid of at least 10000, CPU and
memory requests and limits, no service-account token, pull policy by tag or digest), and
:func:`~.hardening.check_workload` asks that a NetworkPolicy select every pod template.
The backend runs all of them on every object before it is created and behind ``--dry-run``
and ``export`` (:func:`~.build.build_manifests`), so a profile or a setting that produces a
bad manifest is refused in one line; the tests run them on every generated manifest.

Both functions return human-readable violations, each naming the field and the bad value;
an empty list means the object passed. They never raise on a malformed document.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from ...units import DNS_LABEL, DNS_SUBDOMAIN, check_label, parse_quantity
from .hardening import MIN_UID, image_pull_policy, pod_specs
from .settings import CONFIGMAP_HARD_LIMIT, QUEUE_LABEL
from .trainjob_manifests import trainjob_pod_specs

#: Volume types Pod Security Standards *restricted* allows.
RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
#: Sysctls Pod Security Standards *baseline* (and so *restricted*) allows.
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ping_group_range",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_syncookies",
    }
)
_SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
_SECCOMP_OK = ("RuntimeDefault", "Localhost")
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
_CONFIGMAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# objects whose name ends up in a label value or a DNS label, so 63 is their limit
_LABEL_NAMED = {"Job": DNS_LABEL, "Namespace": DNS_LABEL, "Service": _DNS_1035}


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _containers(pod_spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for field in _CONTAINER_LISTS:
        for container in _list(pod_spec.get(field)):
            container = _map(container)
            yield f"{field[:-1]} {container.get('name')!r}", container


def _seccomp(context: Mapping[str, Any]) -> str | None:
    kind = _map(context.get("seccompProfile")).get("type")
    return str(kind) if kind is not None else None


def _context_rules(where: str, context: Mapping[str, Any]) -> list[str]:
    """Rules that apply alike to the pod's and each container's securityContext."""
    problems = []
    if context.get("runAsUser") == 0:
        problems.append(f"{where}.runAsUser must not be 0 (root)")
    if _seccomp(context) not in (None, *_SECCOMP_OK):
        problems.append(
            f"{where}.seccompProfile.type {_seccomp(context)!r} must be RuntimeDefault or Localhost"
        )
    if _map(context.get("appArmorProfile")).get("type") == "Unconfined":
        problems.append(f"{where}.appArmorProfile.type must not be Unconfined")
    selinux = _map(context.get("seLinuxOptions"))
    if selinux.get("type", "") not in _SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
        problems.append(
            f"{where}.seLinuxOptions may set only an allowed type (container_t…), not {dict(selinux)}"
        )
    if _map(context.get("windowsOptions")).get("hostProcess"):
        problems.append(f"{where}.windowsOptions.hostProcess must not be true")
    return problems


def check_restricted(pod_spec: Mapping[str, Any]) -> list[str]:
    """Pod Security Standards *restricted* (which includes *baseline*) for one pod spec.

    Args:
        pod_spec: a pod's ``spec`` (for a Job, ``spec.template.spec``).

    Returns:
        One line per violation; empty when the pod would be admitted in a namespace that
        enforces ``pod-security.kubernetes.io/enforce: restricted``.
    """
    problems: list[str] = []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(field):
            problems.append(f"{field} must not be true")
    for volume in _list(pod_spec.get("volumes")):
        volume = _map(volume)
        for kind in sorted(set(volume) - {"name"} - RESTRICTED_VOLUME_TYPES):
            problems.append(
                f"volume {volume.get('name')!r} is a {kind} volume; restricted allows only "
                f"{', '.join(sorted(RESTRICTED_VOLUME_TYPES))}"
            )
    pod_context = _map(pod_spec.get("securityContext"))
    problems += _context_rules("securityContext", pod_context)
    for sysctl in _list(pod_context.get("sysctls")):
        name = _map(sysctl).get("name")
        if name not in SAFE_SYSCTLS:
            problems.append(f"securityContext.sysctls: {name!r} is not a safe sysctl")
    for what, container in _containers(pod_spec):
        context = _map(container.get("securityContext"))
        where = f"{what}: securityContext"
        problems += _context_rules(where, context)
        if context.get("privileged"):
            problems.append(f"{where}.privileged must not be true")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}.allowPrivilegeEscalation must be false")
        capabilities = _map(context.get("capabilities"))
        if "ALL" not in _list(capabilities.get("drop")):
            problems.append(f"{where}.capabilities.drop must include ALL")
        added = [cap for cap in _list(capabilities.get("add")) if cap != "NET_BIND_SERVICE"]
        if added:
            problems.append(f"{where}.capabilities.add may hold only NET_BIND_SERVICE, not {added}")
        if context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is not True:
            problems.append(f"{where}.runAsNonRoot must be true (here or in the pod's securityContext)")
        if _seccomp(context) is None and _seccomp(pod_context) is None:  # set ones are checked above
            problems.append(
                f"{where}.seccompProfile.type must be RuntimeDefault or Localhost "
                "(here or in the pod's securityContext)"
            )
        if context.get("procMount", "Default") != "Default":
            problems.append(f"{where}.procMount must be Default")
        for port in _list(container.get("ports")):
            if _map(port).get("hostPort"):
                problems.append(f"{what}: hostPort {_map(port)['hostPort']} must not be set")
    return problems


def check_hardened(pod_spec: Mapping[str, Any]) -> list[str]:
    """The rules beyond *restricted* that DESIGN.md sets for every pod the builders make.

    Returns:
        One line per violation; empty when the pod keeps them all.
    """
    problems: list[str] = []
    if pod_spec.get("automountServiceAccountToken") is not False:
        problems.append("automountServiceAccountToken must be false (no workload needs the API token)")
    pod_context = _map(pod_spec.get("securityContext"))
    for what, container in _containers(pod_spec):
        context = _map(container.get("securityContext"))
        where = f"{what}: securityContext"
        if context.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}.readOnlyRootFilesystem must be true (emptyDirs hold what it writes)")
        for field in ("runAsUser", "runAsGroup"):
            value = context.get(field, pod_context.get(field))
            if not (isinstance(value, int) and value >= MIN_UID):
                problems.append(
                    f"{where}.{field} {value!r} must be at least {MIN_UID} "
                    "(here or in the pod's securityContext)"
                )
        resources = _map(container.get("resources"))
        for part in ("requests", "limits"):
            missing = [name for name in ("cpu", "memory") if name not in _map(resources.get(part))]
            if missing:
                problems.append(f"{what}: resources.{part} must set {' and '.join(missing)}")
        image = str(container.get("image", ""))
        if container.get("imagePullPolicy") != image_pull_policy(image):
            problems.append(
                f"{what}: imagePullPolicy {container.get('imagePullPolicy')!r} must be "
                f"{image_pull_policy(image)} for image {image!r} (Always by tag, IfNotPresent by digest)"
            )
    group = pod_context.get("fsGroup")
    if group is not None and not (isinstance(group, int) and group >= MIN_UID):
        problems.append(f"securityContext.fsGroup {group!r} must be at least {MIN_UID}")
    return problems


def _label_problems(where: str, labels: Any) -> list[str]:
    problems = []
    for key, value in _map(labels).items():
        if not isinstance(value, str):
            problems.append(f"{where}: label {key!r} has the non-string value {value!r}")
            continue
        try:
            check_label(str(key), value)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
    return problems


def _name_problems(where: str, name: Any, *, limit: int, pattern: re.Pattern[str]) -> list[str]:
    if not isinstance(name, str) or not name:
        return [f"{where} is missing"]
    if len(name) > limit:
        return [f"{where} {name!r} is {len(name)} characters; at most {limit} are allowed"]
    if not pattern.match(name):
        return [f"{where} {name!r} is not an RFC 1123 name (lower-case letters, digits, '-')"]
    return []


def _quantity(where: str, value: Any) -> tuple[Decimal | None, list[str]]:
    if not isinstance(value, str):
        return None, [f"{where} {value!r} must be a string (quantities are written as strings)"]
    try:
        return parse_quantity(value), []
    except ValueError as exc:
        return None, [f"{where}: {exc}"]


def _is_extended(resource: str) -> bool:
    domain, slash, _ = resource.partition("/")
    return bool(slash) and not (domain == "kubernetes.io" or domain.endswith(".kubernetes.io"))


def _resource_problems(where: str, resources: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    parsed: dict[str, dict[str, Decimal]] = {"requests": {}, "limits": {}}
    for part in ("requests", "limits"):
        for name, value in _map(resources.get(part)).items():
            number, found = _quantity(f"{where}.{part}.{name}", value)
            problems += found
            if number is not None:
                parsed[part][name] = number
    requests, limits = parsed["requests"], parsed["limits"]
    raw = {part: _map(resources.get(part)) for part in parsed}
    for name in sorted({*requests, *limits}):
        if _is_extended(name):
            for part in ("requests", "limits"):
                if name in parsed[part] and parsed[part][name] != parsed[part][name].to_integral_value():
                    problems.append(f"{where}.{part}.{name} {raw[part][name]!r} must be a whole number")
            if name not in limits:
                problems.append(f"{where}: {name} must be set in limits (it is only in requests)")
            elif name in requests and requests[name] != limits[name]:
                problems.append(
                    f"{where}: {name} request {raw['requests'][name]!r} must equal its limit "
                    f"{raw['limits'][name]!r} (extended resources such as GPUs are not overcommitted)"
                )
        elif name in requests and name in limits and requests[name] > limits[name]:
            problems.append(f"{where}: {name} request {raw['requests'][name]!r} is above its limit")
    return problems


def _env_problems(where: str, env: list[Any]) -> list[str]:
    problems = []
    seen: set[str] = set()
    for entry in env:
        entry = _map(entry)
        name = entry.get("name")
        if name in seen:
            problems.append(f"{where}: variable {name!r} is set twice")
        seen.add(str(name))
        source = _map(entry.get("valueFrom"))
        if "value" in entry and source:
            problems.append(f"{where}: variable {name!r} has both value and valueFrom")
        if "secretKeyRef" in source:
            ref = _map(source["secretKeyRef"])
            if not ref.get("name") or not ref.get("key"):
                problems.append(f"{where}: variable {name!r} secretKeyRef needs both name and key")
    return problems


def _pod_spec_problems(where: str, pod_spec: Mapping[str, Any]) -> list[str]:
    problems = [f"{where}: {problem}" for problem in check_restricted(pod_spec) + check_hardened(pod_spec)]
    volumes: set[str] = set()
    for volume in _list(pod_spec.get("volumes")):
        volume = _map(volume)
        name = volume.get("name")
        problems += _name_problems(f"{where}.volumes name", name, limit=63, pattern=DNS_LABEL)
        if name in volumes:
            problems.append(f"{where}: volume name {name!r} is used twice")
        volumes.add(str(name))
        if "emptyDir" in volume:
            empty = _map(volume["emptyDir"])
            if empty.get("medium", "") not in ("", "Memory"):
                problems.append(
                    f"{where}: volume {name!r} emptyDir.medium {empty['medium']!r} must be '' or 'Memory' "
                    "(exact case)"
                )
            if "sizeLimit" in empty:
                problems += _quantity(f"{where}: volume {name!r} emptyDir.sizeLimit", empty["sizeLimit"])[1]
    names: set[str] = set()
    for what, container in _containers(pod_spec):
        at = f"{where}: {what}"
        problems += _name_problems(f"{at} name", container.get("name"), limit=63, pattern=DNS_LABEL)
        if container.get("name") in names:
            problems.append(f"{at}: the container name is used twice")
        names.add(str(container.get("name")))
        problems += _resource_problems(f"{at} resources", _map(container.get("resources")))
        problems += _env_problems(f"{at} env", _list(container.get("env")))
        paths: set[str] = set()
        for mount in _list(container.get("volumeMounts")):
            mount = _map(mount)
            if mount.get("name") not in volumes:
                problems.append(f"{at}: volumeMount {mount.get('name')!r} names no volume of the pod")
            if mount.get("mountPath") in paths:
                problems.append(f"{at}: mount path {mount.get('mountPath')!r} is used twice")
            paths.add(str(mount.get("mountPath")))
    problems += _label_problems(f"{where}.nodeSelector", pod_spec.get("nodeSelector"))
    for toleration in _list(pod_spec.get("tolerations")):
        toleration = _map(toleration)
        if toleration.get("operator") == "Exists" and toleration.get("value"):
            problems.append(f"{where}: toleration {toleration.get('key')!r} has operator Exists and a value")
    return problems


def _templates_labels(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """The labels of every nested object template (``metadata.labels`` below the top)."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            if key == "metadata" and path:
                yield f"{here}.labels", _map(value).get("labels")
            else:
                yield from _templates_labels(value, here)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _templates_labels(item, f"{path}[{index}]")


def _configmap_problems(doc: Mapping[str, Any]) -> list[str]:
    problems = []
    data, binary = _map(doc.get("data")), _map(doc.get("binaryData"))
    size = 0
    for key in [*data, *binary]:
        if len(key) > 253 or not _CONFIGMAP_KEY.match(key) or key in (".", ".."):
            problems.append(f"key {key!r} must be letters, digits, '-', '_' or '.' (at most 253)")
    for key in sorted(set(data) & set(binary)):
        problems.append(f"key {key!r} is in both data and binaryData")
    size += sum(len(str(value).encode("utf-8")) for value in data.values())
    for key, value in binary.items():
        try:
            size += len(base64.b64decode(str(value), validate=True))
        except (binascii.Error, ValueError):
            problems.append(f"binaryData {key!r} is not valid base64")
    if size > CONFIGMAP_HARD_LIMIT:
        problems.append(
            f"data and binaryData hold {size} bytes; a ConfigMap holds at most {CONFIGMAP_HARD_LIMIT}"
        )
    return problems


def _job_problems(doc: Mapping[str, Any]) -> list[str]:
    problems = []
    spec = _map(doc.get("spec"))
    for field, low in (("backoffLimit", 0), ("ttlSecondsAfterFinished", 0), ("activeDeadlineSeconds", 1)):
        if field in spec and not (isinstance(spec[field], int) and spec[field] >= low):
            problems.append(f"spec.{field} {spec[field]!r} must be a whole number of at least {low}")
    restart = _map(_map(spec.get("template")).get("spec")).get("restartPolicy")
    if restart not in ("Never", "OnFailure"):
        problems.append(f"spec.template.spec.restartPolicy {restart!r} must be Never or OnFailure")
    elif "podFailurePolicy" in spec and restart != "Never":
        problems.append("spec.podFailurePolicy needs spec.template.spec.restartPolicy Never")
    if QUEUE_LABEL in _map(_map(doc.get("metadata")).get("labels")) and spec.get("suspend") is not True:
        problems.append(f"a Job with the {QUEUE_LABEL} label must be created with spec.suspend true")
    return problems


def check_manifest(doc: Mapping[str, Any]) -> list[str]:
    """Everything this module checks, on one manifest of any kind.

    Covers the object's name (RFC 1123, length by kind), label syntax everywhere, and for
    every pod spec inside it: :func:`check_restricted`, quantities, emptyDir media, GPU and
    other extended resources (whole, request equal to limit), env secret references,
    volume and mount consistency. ConfigMaps and Jobs get their own rules too.

    Returns:
        One line per violation, each starting with ``Kind/name``; empty when all is well.
    """
    kind = str(doc.get("kind"))
    metadata = _map(doc.get("metadata"))
    problems: list[str] = []
    if "generateName" not in metadata:
        pattern = _LABEL_NAMED.get(kind, DNS_SUBDOMAIN)
        limit = 63 if kind in _LABEL_NAMED else 253
        problems += _name_problems("metadata.name", metadata.get("name"), limit=limit, pattern=pattern)
    if "namespace" in metadata:
        problems += _name_problems("metadata.namespace", metadata["namespace"], limit=63, pattern=DNS_LABEL)
    problems += _label_problems("metadata.labels", metadata.get("labels"))
    for key in _map(metadata.get("annotations")):
        try:
            check_label(str(key), "")
        except ValueError as exc:
            problems.append(f"metadata.annotations: {exc}")
    for where, labels in _templates_labels(doc.get("spec"), "spec"):
        problems += _label_problems(where, labels)
    # a TrainJob's pods are its trainer block and runtime patches over the runtime's pod
    pods = trainjob_pod_specs(doc) if kind == "TrainJob" else pod_specs(doc.get("spec"), "spec")
    for where, pod_spec in pods:
        problems += _pod_spec_problems(where, pod_spec)
    if kind == "ConfigMap":
        problems += _configmap_problems(doc)
    if kind == "Job":
        problems += _job_problems(doc)
    return [f"{kind}/{metadata.get('name')}: {problem}" for problem in problems]
