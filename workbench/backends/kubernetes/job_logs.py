"""The output of a one-pod Job (a pod workload, a notebook run): its newest started pod's log,
or, following it, every pod the Job starts in turn until the workload ends."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ...store import ACTIVE, PENDING, Workload
from .logs import MarkerFilter
from .status import observe

if TYPE_CHECKING:
    from .backend import KubernetesBackend


def waiting(pod: Mapping[str, Any]) -> bool:
    """True while the pod's container has not started (nothing to stream yet)."""
    return pod.get("status", {}).get("phase") not in ("Running", "Succeeded", "Failed")


def job_pod_logs(backend: KubernetesBackend, workload: Workload, *, follow: bool = False) -> Iterator[str]:
    """The output of a one-pod Job's newest started pod; with ``follow``, until it ends."""
    marker = backend.marker(workload.id)
    if not follow:
        pods = backend.pods(workload.id)
        started = [p for p in pods if not waiting(p)]
        if started:
            data = b"".join(backend.client.logs(started[-1]["metadata"]["name"]))
            yield marker.feed(data.decode("utf-8", "replace")) + marker.close()
        return
    yield from _follow(backend, workload.id, marker)


def _follow(backend: KubernetesBackend, workload_id: str, marker: MarkerFilter) -> Iterator[str]:
    streamed: set[str] = set()
    said = ""
    while True:
        record = backend.refresh(backend.store.get(workload_id))
        pods = [p for p in backend.pods(workload_id) if p["metadata"]["name"] not in streamed]
        ready = [p for p in pods if not waiting(p)]
        if ready:
            pod = ready[0]["metadata"]["name"]
            streamed.add(pod)
            for chunk in backend.client.logs(pod, follow=True):
                text = marker.feed(chunk.decode("utf-8", "replace"))
                if text:
                    yield text
            continue
        if record.done:
            tail = marker.close()
            if tail:
                yield tail
            return
        if record.status == PENDING and record.message and record.message != said:
            said = record.message
            yield f"[workbench] {workload_id} pending: {said}\n"

        def changed(said: str = said) -> bool:
            current = backend.pods(workload_id, fresh=False)
            if any(p["metadata"]["name"] not in streamed and not waiting(p) for p in current):
                return True
            seen = observe(backend.job(workload_id, fresh=False), current)
            return seen is None or seen.status not in ACTIVE or seen.message != said

        backend.tracker.wait(changed, timeout=2.0)
