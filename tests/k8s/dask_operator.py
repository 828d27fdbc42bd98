"""A stand-in for the dask-kubernetes operator, for the API emulator.

    operator = install_dask_operator(emulator)   # the CRDs, plus a controller on the loop

It registers the four CRDs of the operator (daskclusters, daskworkergroups, daskautoscalers,
daskjobs) and reconciles on every pass of the emulator's control loop, as the operator does
in a cluster, for each DaskCluster:

- the scheduler Service ``<name>-scheduler`` from ``spec.scheduler.service``, made a
  LoadBalancer with ingress 127.0.0.1: every pod of the emulator lives on 127.0.0.1, so the
  scheduler and its dashboard get free local ports, which become the Service's ports and
  replace ``--port``/``--dashboard-address``/``--host`` in the scheduler's args (what a pod's
  own network namespace gives it in a cluster);
- the scheduler pod (the operator makes a Deployment of one; the emulator has none), and the
  default DaskWorkerGroup ``<name>-default``, whose ``replicas`` worker pods it keeps (scale up
  and down, newest removed first), each with ``DASK_WORKER_NAME`` and ``DASK_SCHEDULER_ADDRESS``
  (the Service's DNS name, which the process kubelet rewrites to 127.0.0.1);
- a change of the DaskCluster's ``spec.worker.replicas`` goes to the worker group; a
  DaskAutoscaler clamps the group's replicas into [minimum, maximum] (the operator asks the
  scheduler for its adaptive target; an idle cluster's is its minimum);
- ``status.phase``: Pending once the components exist, Running while the scheduler pod runs;
  Error for a name the operator refuses.

Everything created is owned (ownerReferences) by the cluster, worker pods by their group,
so deleting the DaskCluster with propagationPolicy Background removes it all.
``idleTimeout`` is not emulated.
"""

from __future__ import annotations

import copy
import re
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

from .cluster import PODS
from .errors import ApiError
from .resources import ResourceType
from .store import Obj

GROUP = "kubernetes.dask.org"
KINDS = (
    ("daskclusters", "DaskCluster"),
    ("daskworkergroups", "DaskWorkerGroup"),
    ("daskautoscalers", "DaskAutoscaler"),
    ("daskjobs", "DaskJob"),
)
CLUSTERS = (GROUP, "daskclusters")
GROUPS = (GROUP, "daskworkergroups")
AUTOSCALERS = (GROUP, "daskautoscalers")
SERVICES = ("", "services")
CLUSTER_LABEL = "dask.org/cluster-name"
GROUP_LABEL = "dask.org/workergroup-name"
COMPONENT_LABEL = "dask.org/component"
# the operator's own rule (dask_kubernetes.constants.VALID_CLUSTER_NAME)
VALID_NAME = re.compile(r"^(?=.{,53}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _owner(obj: Obj) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _owned_by(obj: Obj, owner: Obj) -> bool:
    return any(
        ref.get("uid") == owner["metadata"]["uid"] for ref in obj["metadata"].get("ownerReferences") or []
    )


def _set_arg(args: list[str], flag: str, value: str) -> list[str]:
    """``args`` with ``flag VALUE`` (or ``flag=VALUE``) set to ``value``, appended if absent."""
    out = list(args)
    for index, arg in enumerate(out):
        if arg == flag and index + 1 < len(out):
            out[index + 1] = value
            return out
        if arg.startswith(f"{flag}="):
            out[index] = f"{flag}={value}"
            return out
    return [*out, flag, value]


@dataclass
class DaskOperator:
    """The controller; ``ports`` maps a cluster's uid to its (scheduler, dashboard) ports."""

    emulator: Any
    ports: dict[str, tuple[int, int]] = field(default_factory=dict)
    replicas_seen: dict[str, int] = field(default_factory=dict)

    def rt(self, group: str, plural: str) -> ResourceType:
        found = self.emulator.registry.by_key((group, plural))
        assert found is not None, f"{plural} is not served"
        return found

    def reconcile(self, _emulator: Any) -> None:
        store = self.emulator.store
        clusters = store.list(CLUSTERS)
        live = {c["metadata"]["uid"] for c in clusters}
        self.ports = {uid: p for uid, p in self.ports.items() if uid in live}
        self.replicas_seen = {uid: n for uid, n in self.replicas_seen.items() if uid in live}
        for cluster in clusters:
            try:
                self._cluster(cluster)
            except ApiError:  # a dependent is being deleted or raced; the next pass tries again
                continue
        for group in store.list(GROUPS):
            try:
                self._worker_group(group)
            except ApiError:
                continue

    # -- one DaskCluster ---------------------------------------------------------------------
    def _labels(self, cluster: Obj, part: Obj, component: str) -> dict[str, str]:
        """The cluster's labels, the part's template labels and the operator's own (as it copies them)."""
        labels = dict(cluster["metadata"].get("labels") or {})
        labels.update((part.get("metadata") or {}).get("labels") or {})
        labels.update({CLUSTER_LABEL: cluster["metadata"]["name"], COMPONENT_LABEL: component})
        return labels

    def _phase(self, cluster: Obj, phase: str) -> None:
        if (cluster.get("status") or {}).get("phase") != phase:
            changed = copy.deepcopy(cluster)
            changed.setdefault("status", {})["phase"] = phase
            self.emulator.cluster.write(self.rt(*CLUSTERS), changed)

    def _cluster(self, cluster: Obj) -> None:
        meta, spec = cluster["metadata"], cluster.get("spec") or {}
        name, namespace, uid = meta["name"], meta["namespace"], meta["uid"]
        if not VALID_NAME.match(name):
            self._phase(cluster, "Error")
            return
        if uid not in self.ports:
            self.ports[uid] = (free_port(), free_port())
        comm, dashboard = self.ports[uid]
        store, api = self.emulator.store, self.emulator.cluster
        scheduler = spec.get("scheduler") or {}
        service_name = f"{name}-scheduler"
        if store.get(SERVICES, namespace, service_name) is None:
            self._service(cluster, scheduler, service_name, comm, dashboard)
        pods = [p for p in store.list(PODS, namespace) if _owned_by(p, cluster)]
        if not [p for p in pods if (p["metadata"].get("labels") or {}).get(COMPONENT_LABEL) == "scheduler"]:
            pod_spec = copy.deepcopy(scheduler.get("spec") or {})
            for container in pod_spec.get("containers") or []:
                args = _set_arg(list(container.get("args") or []), "--host", "127.0.0.1")
                args = _set_arg(args, "--port", str(comm))
                container["args"] = _set_arg(args, "--dashboard-address", f"127.0.0.1:{dashboard}")
            pod = {
                "metadata": {
                    "generateName": f"{service_name}-",
                    "labels": self._labels(cluster, scheduler, "scheduler"),
                    "ownerReferences": [_owner(cluster)],
                },
                "spec": pod_spec,
            }
            api.create(self.rt("", "pods"), namespace, pod)
        group_name = f"{name}-default"
        worker = spec.get("worker") or {}
        replicas = int(worker.get("replicas", 1))
        group = store.get(GROUPS, namespace, group_name)
        if group is None:
            body = {
                "metadata": {
                    "name": group_name,
                    "labels": self._labels(cluster, worker, "workergroup"),
                    "ownerReferences": [_owner(cluster)],
                },
                "spec": {"cluster": name, "worker": copy.deepcopy(worker)},
            }
            api.create(self.rt(*GROUPS), namespace, body)
        elif self.replicas_seen.get(uid, replicas) != replicas:  # the cluster was scaled: so is its group
            self._scale(group, replicas)
        self.replicas_seen[uid] = replicas
        running = [
            p
            for p in pods
            if (p["metadata"].get("labels") or {}).get(COMPONENT_LABEL) == "scheduler"
            and (p.get("status") or {}).get("phase") == "Running"
        ]
        self._phase(cluster, "Running" if running else "Pending")

    def _service(self, cluster: Obj, scheduler: Obj, name: str, comm: int, dashboard: int) -> None:
        spec = copy.deepcopy(scheduler.get("service") or {})
        spec["type"] = "LoadBalancer"
        ports = []
        for port in spec.get("ports") or []:
            number = comm if port.get("name") == "tcp-comm" else dashboard
            ports.append({**port, "port": number, "targetPort": number})
        spec["ports"] = ports
        body = {
            "metadata": {
                "name": name,
                "labels": self._labels(cluster, scheduler, "scheduler"),
                "ownerReferences": [_owner(cluster)],
            },
            "spec": spec,
        }
        rt = self.rt("", "services")
        created = self.emulator.cluster.create(rt, cluster["metadata"]["namespace"], body)
        changed = copy.deepcopy(created)
        changed["status"] = {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}
        self.emulator.cluster.write(rt, changed)

    # -- worker groups ---------------------------------------------------------------------
    def _scale(self, group: Obj, replicas: int) -> None:
        changed = copy.deepcopy(group)
        changed["spec"]["worker"]["replicas"] = replicas
        self.emulator.cluster.write(self.rt(*GROUPS), changed)

    def _worker_group(self, group: Obj) -> None:
        meta, spec = group["metadata"], group.get("spec") or {}
        namespace, cluster_name = meta["namespace"], spec.get("cluster", "")
        store, api = self.emulator.store, self.emulator.cluster
        cluster = store.get(CLUSTERS, namespace, cluster_name)
        if cluster is None or cluster["metadata"]["uid"] not in self.ports:
            return
        worker = spec.get("worker") or {}
        replicas = int(worker.get("replicas", 1))
        for autoscaler in store.list(AUTOSCALERS, namespace):
            bounds = autoscaler.get("spec") or {}
            if bounds.get("cluster") != cluster_name:
                continue
            if not _owned_by(autoscaler, cluster):  # the operator adopts it: deleting the cluster deletes it
                adopted = copy.deepcopy(autoscaler)
                adopted["metadata"]["ownerReferences"] = [_owner(cluster)]
                api.write(self.rt(*AUTOSCALERS), adopted)
            clamped = min(max(replicas, int(bounds.get("minimum", 0))), int(bounds.get("maximum", replicas)))
            if clamped != replicas:
                self._scale(group, clamped)
                replicas = clamped
        pods = [
            p
            for p in store.list(PODS, namespace)
            if _owned_by(p, group) and not p["metadata"].get("deletionTimestamp")
        ]
        pods.sort(
            key=lambda p: (p["metadata"].get("creationTimestamp", ""), int(p["metadata"]["resourceVersion"]))
        )
        comm = self.ports[cluster["metadata"]["uid"]][0]
        address = f"tcp://{cluster_name}-scheduler.{namespace}.svc.cluster.local:{comm}"
        for _ in range(replicas - len(pods)):
            worker_name = f"{meta['name']}-worker-{uuid.uuid4().hex[:10]}"
            pod_spec = copy.deepcopy(worker.get("spec") or {})
            for container in pod_spec.get("containers") or []:
                env = [
                    e
                    for e in container.get("env") or []
                    if e.get("name") not in ("DASK_WORKER_NAME", "DASK_SCHEDULER_ADDRESS")
                ]
                container["env"] = [
                    *env,
                    {"name": "DASK_WORKER_NAME", "value": worker_name},
                    {"name": "DASK_SCHEDULER_ADDRESS", "value": address},
                ]
                container["args"] = _set_arg(
                    list(container.get("args") or []), "--dashboard-address", "127.0.0.1:0"
                )
            labels = self._labels(cluster, worker, "worker")
            labels.update(meta.get("labels") or {})
            labels.update({GROUP_LABEL: meta["name"], COMPONENT_LABEL: "worker"})
            pod = {
                "metadata": {"name": worker_name, "labels": labels, "ownerReferences": [_owner(group)]},
                "spec": pod_spec,
            }
            api.create(self.rt("", "pods"), namespace, pod)
        for pod in pods[replicas:] if replicas < len(pods) else []:
            api.delete(self.rt("", "pods"), namespace, pod["metadata"]["name"], propagation="Background")


def install_dask_operator(emulator: Any) -> DaskOperator:
    """Register the operator's CRDs on ``emulator`` and run the stand-in controller on its loop."""
    for plural, kind in KINDS:
        emulator.add_crd(GROUP, "v1", plural, kind)
    operator = DaskOperator(emulator)
    emulator.add_controller(operator.reconcile)
    return operator
