"""A pod's filesystem and environment on this machine: volumes, env, command, path translation.

Each pod gets ``<root>/pods/<uid>/rootfs``; every volume is materialised at its (first) mount
path under that rootfs, so nested mounts nest as they do in a container. Paths in argv, env
values and workingDir that lie under a mount are rewritten to point into the rootfs.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from .store import Obj, Store

CONFIGMAPS = ("", "configmaps")
SECRETS = ("", "secrets")
SERVICES = ("", "services")
_PYTHON = re.compile(r"^python(3(\.\d+)?)?$")
_FIELD_REF = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class ConfigError(Exception):
    """The pod cannot start yet: ``reason`` is the container's waiting reason."""

    def __init__(self, reason: str, message: str, event_reason: str = "Failed") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.event_reason = event_reason


def field_ref(pod: Obj, path: str) -> str:
    meta = pod["metadata"]
    if match := _FIELD_REF.match(path):
        return str((meta.get(match[1]) or {}).get(match[2], ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": (pod.get("spec") or {}).get("nodeName"),
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName"),
        "status.podIP": (pod.get("status") or {}).get("podIP") or "127.0.0.1",
        "status.podIPs": (pod.get("status") or {}).get("podIP") or "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    return str(simple.get(path) or "")


def _lookup(store: Store, pod: Obj, ref: Obj, secret: bool) -> str | None:
    namespace = pod["metadata"]["namespace"]
    name, key = ref.get("name", ""), ref.get("key", "")
    obj = store.get(SECRETS if secret else CONFIGMAPS, namespace, name)
    what = "Secret" if secret else "ConfigMap"
    if obj is None:
        if ref.get("optional"):
            return None
        raise ConfigError(
            "CreateContainerConfigError", f'{"secret" if secret else "configmap"} "{name}" not found'
        )
    if secret and key in (obj.get("data") or {}):
        return base64.b64decode(obj["data"][key]).decode(errors="replace")
    if not secret and key in (obj.get("data") or {}):
        return str(obj["data"][key])
    if not secret and key in (obj.get("binaryData") or {}):
        return base64.b64decode(obj["binaryData"][key]).decode(errors="replace")
    if ref.get("optional"):
        return None
    raise ConfigError("CreateContainerConfigError", f"couldn't find key {key} in {what} {namespace}/{name}")


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion; $$ escapes a dollar."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", lambda m: "$" if m[0] == "$$" else env.get(m[1], m[0]), text
    )


def container_env(store: Store, pod: Obj, container: Obj) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, secret in (("configMapRef", False), ("secretRef", True)):
            ref = source.get(kind)
            if ref is None:
                continue
            obj = store.get(
                SECRETS if secret else CONFIGMAPS, pod["metadata"]["namespace"], ref.get("name", "")
            )
            if obj is None:
                if ref.get("optional"):
                    continue
                noun = "secret" if secret else "configmap"
                raise ConfigError("CreateContainerConfigError", f'{noun} "{ref.get("name")}" not found')
            for key, value in (obj.get("data") or {}).items():
                env[prefix + key] = base64.b64decode(value).decode(errors="replace") if secret else str(value)
    for entry in container.get("env") or []:
        name, source = entry["name"], entry.get("valueFrom")
        if source is None:
            env[name] = _expand(str(entry.get("value", "")), env)
        elif "secretKeyRef" in source or "configMapKeyRef" in source:
            secret = "secretKeyRef" in source
            value = _lookup(store, pod, source["secretKeyRef" if secret else "configMapKeyRef"], secret)
            if value is not None:
                env[name] = value
        elif "fieldRef" in source:
            env[name] = field_ref(pod, source["fieldRef"].get("fieldPath", ""))
        elif "resourceFieldRef" in source:
            ref = source["resourceFieldRef"]
            kind, _, res = str(ref.get("resource", "")).partition(".")
            env[name] = str(((container.get("resources") or {}).get(kind) or {}).get(res, "0"))
    return env


def _write_items(target: Path, data: dict[str, bytes], items: list[Obj] | None, mode: int) -> None:
    target.mkdir(parents=True, exist_ok=True)
    chosen = (
        [(i["key"], i.get("path", i["key"]), i.get("mode", mode)) for i in items]
        if items
        else [(k, k, mode) for k in data]
    )
    for key, rel, file_mode in chosen:
        if key not in data:
            continue
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[key])
        path.chmod(file_mode | 0o600)


def _source_files(store: Store, pod: Obj, volume: Obj, kind: str) -> dict[str, bytes] | None:
    secret = kind == "secret"
    spec = volume[kind]
    name = spec.get("secretName" if secret else "name", "")
    obj = store.get(SECRETS if secret else CONFIGMAPS, pod["metadata"]["namespace"], name)
    if obj is None:
        if spec.get("optional"):
            return {}
        noun = "secret" if secret else "configmap"
        raise ConfigError(
            "ContainerCreating",
            f'MountVolume.SetUp failed for volume "{volume.get("name", name)}" : {noun} "{name}" not found',
            "FailedMount",
        )
    files = {k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()}
    for key, value in (obj.get("data") or {}).items():
        files[key] = base64.b64decode(value) if secret else str(value).encode()
    return files


def _fill(store: Store, pod: Obj, volume: Obj, target: Path, pvc_root: Path) -> Path | None:
    """Materialise one volume at ``target``; returns where it lives (None: not emulated)."""
    if "emptyDir" in volume:
        target.mkdir(parents=True, exist_ok=True)
        return target
    for kind in ("configMap", "secret"):
        if kind in volume:
            files = _source_files(store, pod, volume, kind)
            _write_items(
                target, files or {}, volume[kind].get("items"), volume[kind].get("defaultMode", 0o644)
            )
            return target
    if "persistentVolumeClaim" in volume:
        claim = pvc_root / pod["metadata"]["namespace"] / volume["persistentVolumeClaim"]["claimName"]
        claim.mkdir(parents=True, exist_ok=True)
        return claim
    if "hostPath" in volume:
        return Path(volume["hostPath"]["path"])
    if "downwardAPI" in volume or "projected" in volume:
        target.mkdir(parents=True, exist_ok=True)
        sources = volume["projected"].get("sources") or [] if "projected" in volume else [volume]
        for source in sources:
            for kind in ("configMap", "secret"):
                if kind in source:
                    files = _source_files(store, pod, {"name": volume["name"], kind: source[kind]}, kind)
                    _write_items(target, files or {}, source[kind].get("items"), 0o644)
            for item in (source.get("downwardAPI") or {}).get("items") or []:
                if "fieldRef" in item:
                    _write_items(
                        target,
                        {"v": field_ref(pod, item["fieldRef"]["fieldPath"]).encode()},
                        [{"key": "v", "path": item["path"]}],
                        0o644,
                    )
            if "serviceAccountToken" in source:
                (target / source["serviceAccountToken"].get("path", "token")).write_text("emulator-token")
        return target
    target.mkdir(parents=True, exist_ok=True)
    return target


def build_rootfs(store: Store, pod: Obj, pod_dir: Path, pvc_root: Path) -> Path:
    """Materialise every mounted volume under ``pod_dir/rootfs``; returns the rootfs."""
    rootfs = pod_dir / "rootfs"
    if rootfs.exists():
        shutil.rmtree(rootfs, ignore_errors=True)
    rootfs.mkdir(parents=True)
    spec = pod.get("spec") or {}
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    placed: dict[str, Path | None] = {}
    mounts = [
        m
        for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
        for m in c.get("volumeMounts") or []
    ]
    for mount in sorted(mounts, key=lambda m: m["mountPath"].rstrip("/").count("/")):
        volume = volumes.get(mount["name"])
        if volume is None:
            raise ConfigError("CreateContainerConfigError", f'cannot find volume "{mount["name"]}" to mount')
        target = rootfs / mount["mountPath"].strip("/")
        if _is_shm(volume, mount):
            continue
        if mount["name"] not in placed:
            where = target if not mount.get("subPath") else pod_dir / "volumes" / mount["name"]
            placed[mount["name"]] = _fill(store, pod, volume, where, pvc_root)
        source = placed[mount["name"]]
        if source is None:
            continue
        if mount.get("subPath"):
            source = source / mount["subPath"]
            source.mkdir(parents=True, exist_ok=True)
        if source != target and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source, target_is_directory=True)
    return rootfs


def _is_shm(volume: Obj, mount: Obj) -> bool:
    medium = (volume.get("emptyDir") or {}).get("medium")
    return medium == "Memory" and mount["mountPath"].rstrip("/") == "/dev/shm"


def translator(rootfs: Path, container: Obj, pod: Obj) -> Any:
    """A function rewriting mount paths in a string to their place under ``rootfs``."""
    volumes = {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or []}
    paths = {
        m["mountPath"].rstrip("/")
        for m in container.get("volumeMounts") or []
        if not _is_shm(volumes.get(m["name"]) or {}, m)
    }
    paths.discard("")
    if not paths:
        return lambda text: text
    alternation = "|".join(re.escape(p) for p in sorted(paths, key=len, reverse=True))
    pattern = re.compile(rf"(?:^|(?<=[\s=:,;'\"(]))({alternation})(?=/|$|[^\w.-])")
    prefix = str(rootfs)
    return lambda text: pattern.sub(lambda m: prefix + m[1], text)


def dns_rewriter(store: Store, namespace: str) -> Any:
    """Rewrite the DNS names of the namespace's Services (``svc.ns``, ``host.svc``, ``svc.ns.svc…``,
    and a bare ``svc`` after ``//`` or as a whole value) to 127.0.0.1, where every pod lives."""
    names = sorted((s["metadata"]["name"] for s in store.list(SERVICES, namespace)), key=len, reverse=True)
    if not names:
        return lambda text: text
    ns = re.escape(namespace)
    svc = "|".join(re.escape(n) for n in names)
    dotted = re.compile(
        rf"(?<![\w.-])(?:(?:[a-z0-9][-a-z0-9]*\.)(?:{svc})(?:\.{ns}(?:\.svc(?:\.cluster\.local)?)?)?"
        rf"|(?:{svc})\.{ns}(?:\.svc(?:\.cluster\.local)?)?)(?![\w.-])"
    )
    bare = re.compile(rf"(?:(?<=//)|^)(?:{svc})(?=[:/]|$)")
    return lambda text: bare.sub("127.0.0.1", dotted.sub("127.0.0.1", text))


def command_line(
    container: Obj, env: dict[str, str], translate: Any, entrypoints: dict[str, list[str]]
) -> list[str]:
    command = list(container.get("command") or entrypoints.get(str(container.get("image")), []))
    argv = [translate(_expand(str(a), env)) for a in [*command, *(container.get("args") or [])]]
    if argv and _PYTHON.match(os.path.basename(argv[0])):
        argv[0] = sys.executable
    return argv


def process_env(pod: Obj, env: dict[str, str], translate: Any) -> dict[str, str]:
    """The container's env (translated) over this process's PATH, HOME, WORKBENCH_* and PYTHONPATH."""
    base = {k: v for k, v in os.environ.items() if k.startswith("WORKBENCH_") or k in ("HOME", "PYTHONPATH")}
    host_path = os.environ.get("PATH", "")
    out = {**base, **{k: translate(v) for k, v in env.items()}}
    out["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), host_path])
    if "PYTHONPATH" in env and os.environ.get("PYTHONPATH"):
        out["PYTHONPATH"] = out["PYTHONPATH"] + os.pathsep + os.environ["PYTHONPATH"]
    out["HOSTNAME"] = (pod.get("spec") or {}).get("hostname") or pod["metadata"]["name"]
    return out
