"""Services: Endpoints and EndpointSlices of the pods they select, PodDisruptionBudget status.

For every Service with a selector, as the endpoints and endpointslice controllers do:

- the Endpoints object of the same name (label ``endpointslice.kubernetes.io/skip-mirror``)
  lists the selected pods that have an IP and are not finished or being deleted: ready pods
  under ``addresses``, the others under ``notReadyAddresses`` (all under ``addresses`` with
  ``publishNotReadyAddresses``), each with ``targetRef`` and ``nodeName``; ports are the
  Service's with ``targetPort`` resolved (a named one through the pod's container ports);
  pods with the same resolved ports share a subset;
- EndpointSlices (``<service>-<5 chars>``, owned by the Service, labels
  ``kubernetes.io/service-name`` and ``endpointslice.kubernetes.io/managed-by``) hold the
  same pods with ``conditions.ready``/``serving``/``terminating``, one slice per port set;
- Endpoints and slices of a deleted (or selector-less) Service are removed.

PodDisruptionBudgets get ``status`` (expectedPods, currentHealthy (ready), desiredHealthy from
minAvailable or maxUnavailable, percentages rounded up, disruptionsAllowed, the
DisruptionAllowed condition); no eviction API consults them.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

from .apps import PDBS, active_pod, ready_condition, scaled_value
from .cluster import PODS, Cluster, now
from .errors import ApiError
from .selectors import match_label_selector_object
from .store import Obj

SERVICES = ("", "services")
ENDPOINTS = ("", "endpoints")
SLICES = ("discovery.k8s.io", "endpointslices")
SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"
SERVICE_NAME = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
SLICE_CONTROLLER = "endpointslice-controller.k8s.io"


def target_port(pod: Obj, port: Obj) -> int | None:
    """The Service port's targetPort on ``pod`` (a name resolved through its container ports)."""
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for item in container.get("ports") or []:
            if item.get("name") == target and item.get("protocol", "TCP") == port.get("protocol", "TCP"):
                return int(item["containerPort"])
    return None


def _ports(svc: Obj, pod: Obj) -> tuple[tuple[str, int, str], ...]:
    out = []
    for port in (svc.get("spec") or {}).get("ports") or []:
        number = target_port(pod, port)
        if number is not None:
            out.append((port.get("name") or "", number, port.get("protocol", "TCP")))
    return tuple(out)


def _target_ref(pod: Obj) -> Obj:
    meta = pod["metadata"]
    return {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]}


def _port_list(ports: tuple[tuple[str, int, str], ...]) -> list[Obj]:
    return [
        {"name": n, "port": p, "protocol": proto} if n else {"port": p, "protocol": proto}
        for n, p, proto in ports
    ]


class EndpointsController:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        registry = cluster.registry
        self.rts = {key: registry.by_key(key) for key in (ENDPOINTS, SLICES, PDBS)}

    def _rt(self, key: tuple[str, str]) -> Any:
        rt = self.rts[key]
        assert rt is not None
        return rt

    def sync(self) -> None:
        store = self.cluster.store
        live: set[tuple[str, str]] = set()
        for svc in store.list(SERVICES):
            selector = (svc.get("spec") or {}).get("selector")
            if not selector:
                continue
            meta = svc["metadata"]
            live.add((meta["namespace"], meta["name"]))
            pods = [
                p
                for p in store.list(PODS, meta["namespace"])
                if active_pod(p)
                and (p.get("status") or {}).get("podIP")
                and selector.items() <= (p["metadata"].get("labels") or {}).items()
            ]
            try:
                self._endpoints(svc, pods)
                self._slices(svc, pods)
            except ApiError:
                continue
        for key, marker, value in ((ENDPOINTS, SKIP_MIRROR, "true"), (SLICES, MANAGED_BY, SLICE_CONTROLLER)):
            for obj in store.list(key):
                labels = obj["metadata"].get("labels") or {}
                owner = obj["metadata"]["name"] if key == ENDPOINTS else labels.get(SERVICE_NAME)
                if labels.get(marker) == value and (obj["metadata"]["namespace"], owner) not in live:
                    with contextlib.suppress(ApiError):
                        self.cluster.delete(
                            self._rt(key), obj["metadata"]["namespace"], obj["metadata"]["name"]
                        )
        self._budgets()

    def _groups(
        self, svc: Obj, pods: list[Obj]
    ) -> Iterator[tuple[tuple[tuple[str, int, str], ...], list[Obj]]]:
        groups: dict[tuple[tuple[str, int, str], ...], list[Obj]] = {}
        for pod in sorted(pods, key=lambda p: p["status"]["podIP"]):
            ports = _ports(svc, pod)
            if ports:
                groups.setdefault(ports, []).append(pod)
        yield from sorted(groups.items())

    def _ready(self, svc: Obj, pod: Obj) -> bool:
        return (
            bool((svc.get("spec") or {}).get("publishNotReadyAddresses")) or ready_condition(pod) is not None
        )

    def _endpoints(self, svc: Obj, pods: list[Obj]) -> None:
        meta = svc["metadata"]
        subsets = []
        for ports, members in self._groups(svc, pods):
            subset: Obj = {}
            for pod in members:
                address = {
                    "ip": pod["status"]["podIP"],
                    "nodeName": pod["spec"].get("nodeName"),
                    "targetRef": _target_ref(pod),
                }
                field = "addresses" if self._ready(svc, pod) else "notReadyAddresses"
                subset.setdefault(field, []).append(address)
            subset["ports"] = _port_list(ports)
            subsets.append(subset)
        labels = {**(meta.get("labels") or {}), SKIP_MIRROR: "true"}
        existing = self.cluster.store.get(ENDPOINTS, meta["namespace"], meta["name"])
        if existing is None:
            doc: Obj = {"metadata": {"name": meta["name"], "labels": labels}}
            if subsets:
                doc["subsets"] = subsets
            self.cluster.create(self._rt(ENDPOINTS), meta["namespace"], doc)
        elif existing.get("subsets", []) != subsets or existing["metadata"].get("labels") != labels:
            changed = copy.deepcopy(existing)
            changed["metadata"]["labels"] = labels
            changed["metadata"].setdefault("annotations", {})[
                "endpoints.kubernetes.io/last-change-trigger-time"
            ] = now()
            changed.pop("subsets", None)
            if subsets:
                changed["subsets"] = subsets
            self.cluster.write(self._rt(ENDPOINTS), changed)

    def _slices(self, svc: Obj, pods: list[Obj]) -> None:
        meta, rt = svc["metadata"], self._rt(SLICES)
        mine = [
            s
            for s in self.cluster.store.list(SLICES, meta["namespace"])
            if (s["metadata"].get("labels") or {}).get(SERVICE_NAME) == meta["name"]
            and (s["metadata"].get("labels") or {}).get(MANAGED_BY) == SLICE_CONTROLLER
        ]
        by_ports = {
            tuple((p.get("name") or "", p["port"], p["protocol"]) for p in s.get("ports") or []): s
            for s in mine
        }
        wanted = dict(self._groups(svc, pods)) or {(): []}
        for ports, members in wanted.items():
            endpoints = []
            for pod in members:
                ready = self._ready(svc, pod)
                endpoints.append(
                    {
                        "addresses": [pod["status"]["podIP"]],
                        "conditions": {"ready": ready, "serving": ready, "terminating": False},
                        "nodeName": pod["spec"].get("nodeName"),
                        "targetRef": _target_ref(pod),
                    }
                )
            current = by_ports.pop(ports, None)
            if current is None:
                labels = {
                    **(meta.get("labels") or {}),
                    SERVICE_NAME: meta["name"],
                    MANAGED_BY: SLICE_CONTROLLER,
                }
                owner = {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
                doc = {
                    "metadata": {
                        "generateName": f"{meta['name']}-",
                        "labels": labels,
                        "ownerReferences": [owner],
                    },
                    "addressType": "IPv4",
                    "endpoints": endpoints,
                    "ports": _port_list(ports),
                }
                self.cluster.create(rt, meta["namespace"], doc)
            elif current.get("endpoints") != endpoints:
                changed = copy.deepcopy(current)
                changed["endpoints"] = endpoints
                self.cluster.write(rt, changed)
        for stale in by_ports.values():
            self.cluster.delete(rt, meta["namespace"], stale["metadata"]["name"])

    def _budgets(self) -> None:
        store = self.cluster.store
        for pdb in store.list(PDBS):
            spec, meta = pdb.get("spec") or {}, pdb["metadata"]
            pods = [
                p
                for p in store.list(PODS, meta["namespace"])
                if active_pod(p)
                and match_label_selector_object(spec.get("selector"), p["metadata"].get("labels") or {})
            ]
            expected, healthy = len(pods), sum(1 for p in pods if ready_condition(p))
            if spec.get("minAvailable") is not None:
                desired = scaled_value(spec["minAvailable"], expected, True)
            elif spec.get("maxUnavailable") is not None:
                desired = max(expected - scaled_value(spec["maxUnavailable"], expected, True), 0)
            else:
                desired = expected
            allowed = max(healthy - desired, 0)
            old = pdb.get("status") or {}
            cond = next(
                (c for c in old.get("conditions") or [] if c.get("type") == "DisruptionAllowed"), None
            )
            value = "True" if allowed > 0 else "False"
            if cond is None or cond.get("status") != value:
                reason = "SufficientPods" if allowed > 0 else "InsufficientPods"
                cond = {
                    "type": "DisruptionAllowed",
                    "status": value,
                    "reason": reason,
                    "message": "",
                    "lastTransitionTime": now(),
                }
            status = {
                "observedGeneration": meta.get("generation", 1),
                "disruptionsAllowed": allowed,
                "currentHealthy": healthy,
                "desiredHealthy": desired,
                "expectedPods": expected,
                "conditions": [cond],
            }
            if status != old:
                changed = copy.deepcopy(pdb)
                changed["status"] = status
                self.cluster.write(self._rt(PDBS), changed)
