"""Workloads made elsewhere (another machine, another kernel), found in the cluster by their labels."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING

from ...errors import PermissionDenied, WorkbenchError
from ...spec import NotebookSpec, parse_spec
from ..base import Payload
from .build import SPEC_ANNOTATION
from .notebook_manifests import notebook_location
from .settings import ID_LABEL
from .status import observe, timestamp
from .trainjob import KUBEFLOW_API_INFO

if TYPE_CHECKING:
    from .backend import KubernetesBackend


def discover(backend: KubernetesBackend) -> None:
    """Add to the store the workloads found in the cluster by their labels.

    The main object of each carries its spec (a Job, a scheduled notebook's CronJob, or a
    Kubeflow TrainJob where the cluster has Trainer v2); the Jobs a CronJob or a TrainJob
    makes do not, so they are not found as workloads of their own.
    """
    known = {w.id for w in backend.store.list(backend=backend.name)}
    found = list(backend.tracker.objects("Job"))
    with contextlib.suppress(PermissionDenied):  # a Role from before scheduled notebooks
        found += backend.tracker.objects("CronJob")
    with contextlib.suppress(PermissionDenied):  # a Role from before TrainJobs
        found += backend.train.kubeflow.tracked()
    for obj in found:
        meta = obj.get("metadata", {})
        workload_id = meta.get("labels", {}).get(ID_LABEL)
        raw = meta.get("annotations", {}).get(SPEC_ANNOTATION)
        if not workload_id or workload_id in known or not raw:
            continue
        try:
            data = json.loads(raw)
            if data.get("kind", "pod") in ("pod", "train"):  # the code itself is not kept
                data |= {"code": "", "script": None}
            spec = parse_spec(data)
            info = {}
            if isinstance(spec, NotebookSpec):
                info["location"] = notebook_location(spec, workload_id)
            if obj.get("kind") == "TrainJob":
                info[KUBEFLOW_API_INFO] = "TrainJob"
        except (WorkbenchError, ValueError):
            continue
        if obj.get("kind") in ("CronJob", "TrainJob"):
            created = timestamp(meta.get("creationTimestamp"))
        else:
            observed = observe(obj, [])
            created = observed.started if observed else None
        known.add(workload_id)
        owner = meta.get("annotations", {}).get("workbench.jupyter.org/owner", "")
        backend.insert_pending(workload_id, spec, Payload(), "", info, created=created, owner=owner)
    if "dask" in backend.__dict__:  # the Dask half was used: it watches DaskClusters
        backend.dask.discover(known)
    if "serve" in backend.__dict__:  # the endpoint half was used: it watches Deployments
        backend.serve.discover(known)
