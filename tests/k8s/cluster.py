"""Object semantics shared by the HTTP layer and the controllers: create, update, patch, delete,
garbage collection by ownerReferences, and Events."""

from __future__ import annotations

import copy
import datetime as dt
import random
import uuid
from collections.abc import Callable
from typing import Any

from . import validation
from .errors import ApiError, already_exists, bad_request, conflict, not_found
from .patching import json_patch, merge_patch, strategic_merge_patch
from .resources import Registry, ResourceType, crd_types
from .store import Key, Obj, Store

CORE_EVENTS: Key = ("", "events")
PODS: Key = ("", "pods")
NAMESPACES: Key = ("", "namespaces")
CRDS: Key = ("apiextensions.k8s.io", "customresourcedefinitions")
_SUFFIX = "bcdfghjklmnpqrstvwxz2456789"
#: batch/v1 keeps the legacy default of orphaning dependents when no policy is given
ORPHAN_BY_DEFAULT = {("batch", "jobs"), ("batch", "cronjobs")}


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return dt.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC).timestamp()


class Cluster:
    """Holds the store and the registry; the emulator's single source of truth."""

    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        #: called with (pod, grace_seconds) when a pod leaves the store
        self.pod_deleted: list[Callable[[Obj, float], None]] = []
        self.gc_dirty = False

    # helpers -----------------------------------------------------------------------------

    def rt_for(self, obj: Obj) -> ResourceType | None:
        return self.registry.by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        obj = self.store.get(rt.key, namespace if rt.namespaced else "", name)
        if obj is None:
            raise not_found(rt.plural, rt.group, name)
        return obj

    def view(self, rt: ResourceType, obj: Obj) -> Obj:
        """A copy of ``obj`` as ``rt``'s version presents it."""
        out = copy.deepcopy(obj)
        out["apiVersion"] = rt.api_version
        out["kind"] = rt.kind
        return out

    def _check_namespace(self, rt: ResourceType, namespace: str) -> None:
        if rt.namespaced and self.store.get(NAMESPACES, "", namespace) is None:
            raise not_found("namespaces", "", namespace)

    # create ------------------------------------------------------------------------------

    def create(self, rt: ResourceType, namespace: str, body: Any, *, dry_run: bool = False) -> Obj:
        if not isinstance(body, dict):
            raise bad_request("the body of the request was in an unknown format")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if meta.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects to be created")
        if rt.namespaced:
            if meta.get("namespace") not in (None, "", namespace):
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
            self._check_namespace(rt, namespace)
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(random.choices(_SUFFIX, k=5))
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        meta["generation"] = 1
        validation.apply_defaults(rt, obj)
        validation.validate(rt, obj)
        if self.store.get(rt.key, meta.get("namespace", ""), meta["name"]) is not None:
            raise already_exists(rt.plural, rt.group, meta["name"])
        if dry_run:
            return obj
        if rt.plural == "customresourcedefinitions":
            self._serve_crd(obj)
        if meta.get("ownerReferences"):
            self.gc_dirty = True
        return self.store.put(rt.key, obj, added=True)

    def _serve_crd(self, crd: Obj) -> None:
        for crt in crd_types(crd):
            self.registry.add(crt)

    # update ------------------------------------------------------------------------------

    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        if not isinstance(body, dict):
            raise bad_request("the body of the request was in an unknown format")
        old = self.get(rt, namespace, name)
        meta = body.get("metadata") or {}
        if meta.get("name") not in (None, name):
            raise bad_request("the name of the object does not match the name on the URL")
        wanted = meta.get("resourceVersion")
        if wanted and wanted != old["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, rt.group, name)
        new = copy.deepcopy(old)
        if subresource == "status":
            new["status"] = copy.deepcopy(body.get("status"))
        else:
            keep_status = "status" in rt.subresources
            new = {k: copy.deepcopy(v) for k, v in body.items() if not (keep_status and k == "status")}
            if keep_status and "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            merged = copy.deepcopy(meta)
            for field in ("uid", "creationTimestamp", "namespace", "name", "generation", "deletionTimestamp"):
                if field in old["metadata"]:
                    merged[field] = old["metadata"][field]
            new["metadata"] = merged
            validation.update_defaults(rt, new)
        return self._write(rt, old, new, dry_run=dry_run)

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        old = self.get(rt, namespace, name)
        if "json-patch" in content_type:
            patched = json_patch(old, body)
        elif "strategic" in content_type or "apply-patch" in content_type:
            patched = strategic_merge_patch(old, body)
        else:
            patched = merge_patch(old, body)
        if not isinstance(patched, dict):
            raise bad_request("the patch did not produce an object")
        meta = patched.get("metadata") or {}
        wanted = (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
        if wanted and wanted != old["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, rt.group, name)
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        return self.update(rt, namespace, name, patched, subresource=subresource, dry_run=dry_run)

    def _write(self, rt: ResourceType, old: Obj, new: Obj, *, dry_run: bool = False) -> Obj:
        new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
        meta = new["metadata"]
        validation.validate(rt, new, old)
        if {k: v for k, v in new.items() if k not in ("metadata", "status")} != {
            k: v for k, v in old.items() if k not in ("metadata", "status")
        }:
            meta["generation"] = old["metadata"].get("generation", 1) + 1
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new == old or dry_run:
            return new
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self.store.put(rt.key, new, added=False)
            return self._remove(rt, new, grace=0)
        if meta.get("ownerReferences") != old["metadata"].get("ownerReferences"):
            self.gc_dirty = True
        if rt.plural == "customresourcedefinitions":
            self._serve_crd(new)
        return self.store.put(rt.key, new, added=False)

    def write(self, rt: ResourceType, obj: Obj) -> Obj:
        """Store a controller's change of ``obj``; no conflict check, no validation."""
        obj = copy.deepcopy(obj)
        old = self.store.get(rt.key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if old is None or old["metadata"]["uid"] != obj["metadata"]["uid"]:
            return obj
        if old == obj:
            return old
        obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        return self.store.put(rt.key, obj, added=False)

    # delete ------------------------------------------------------------------------------

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        propagation: str | None = None,
        grace: float | None = None,
        uid: str | None = None,
        rv: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        obj = self.get(rt, namespace, name)
        meta = obj["metadata"]
        if uid and uid != meta["uid"]:
            raise conflict(
                rt.plural,
                rt.group,
                name,
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: {meta['uid']}",
            )
        if rv and rv != meta["resourceVersion"]:
            raise conflict(
                rt.plural,
                rt.group,
                name,
                f"Precondition failed: ResourceVersion in precondition: "
                f"{rv}, ResourceVersion in object meta: {meta['resourceVersion']}",
            )
        if dry_run:
            return copy.deepcopy(obj)
        if propagation is None:
            propagation = "Orphan" if rt.key in ORPHAN_BY_DEFAULT else "Background"
        if meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                changed = copy.deepcopy(obj)
                changed["metadata"]["deletionTimestamp"] = now()
                changed["metadata"]["deletionGracePeriodSeconds"] = 0
                return self.store.put(rt.key, changed, added=False)
            return obj
        if propagation == "Orphan":
            self._orphan(meta["uid"])
        elif propagation == "Foreground":
            for dep_rt, dep in self.dependents(meta["uid"]):
                self.delete(
                    dep_rt,
                    dep["metadata"].get("namespace", ""),
                    dep["metadata"]["name"],
                    propagation="Foreground",
                    grace=grace,
                )
        if grace is None and rt.key == PODS:
            grace = float((obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
        result = self._remove(rt, obj, grace=grace or 0.0)
        if propagation == "Background":
            self.gc_dirty = True
        if rt.key == NAMESPACES:
            self._empty_namespace(name)
        return result

    def _remove(self, rt: ResourceType, obj: Obj, *, grace: float) -> Obj:
        if rt.key == PODS:
            obj["metadata"].setdefault("deletionTimestamp", now())
            obj["metadata"].setdefault("deletionGracePeriodSeconds", int(grace))
        removed = self.store.remove(rt.key, obj)
        if rt.key == PODS:
            for hook in self.pod_deleted:
                hook(removed, grace)
        if rt.key == CRDS:
            for crt in crd_types(obj):
                self.registry.remove(crt.group, crt.plural)
                self.store.drop_kind(crt.key)
        return copy.deepcopy(removed)

    def _empty_namespace(self, namespace: str) -> None:
        for key, obj in list(self.store.all_objects()):
            if obj["metadata"].get("namespace") == namespace:
                rt = self.registry.by_key(key)
                if rt is not None:
                    self._remove(rt, obj, grace=0)

    def dependents(self, uid: str) -> list[tuple[ResourceType, Obj]]:
        out = []
        for key, obj in self.store.all_objects():
            refs = obj["metadata"].get("ownerReferences") or []
            rt = self.registry.by_key(key)
            if rt is not None and any(ref.get("uid") == uid for ref in refs):
                out.append((rt, obj))
        return out

    def _orphan(self, uid: str) -> None:
        for rt, dep in self.dependents(uid):
            changed = copy.deepcopy(dep)
            refs = [ref for ref in changed["metadata"]["ownerReferences"] if ref.get("uid") != uid]
            if refs:
                changed["metadata"]["ownerReferences"] = refs
            else:
                changed["metadata"].pop("ownerReferences")
            self.write(rt, changed)

    def collect_garbage(self) -> None:
        """Delete every object whose owners are all gone (the garbage collector)."""
        if not self.gc_dirty:
            return
        self.gc_dirty = False
        for key, obj in list(self.store.all_objects()):
            refs = obj["metadata"].get("ownerReferences") or []
            if refs and all(self.store.by_uid(ref.get("uid", "")) is None for ref in refs):
                rt = self.registry.by_key(key)
                current = self.store.get(key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
                if rt is not None and current is obj:
                    self.delete(
                        rt,
                        obj["metadata"].get("namespace", ""),
                        obj["metadata"]["name"],
                        propagation="Background",
                    )

    # events ------------------------------------------------------------------------------

    def event(
        self, involved: Obj, reason: str, message: str, *, type_: str = "Normal", component: str = "kubelet"
    ) -> None:
        meta = involved["metadata"]
        namespace = meta.get("namespace") or "default"
        for existing in self.store.list(CORE_EVENTS, namespace):
            ref = existing.get("involvedObject") or {}
            if (
                ref.get("uid") == meta.get("uid")
                and existing.get("reason") == reason
                and existing.get("message") == message
            ):
                changed = copy.deepcopy(existing)
                changed["count"] = changed.get("count", 1) + 1
                changed["lastTimestamp"] = now()
                self.store.put(CORE_EVENTS, changed, added=False)
                return
        stamp = now()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": stamp,
            },
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": meta["name"],
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": "",
        }
        self.store.put(CORE_EVENTS, event, added=True)


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ApiError(400, "BadRequest", message)
