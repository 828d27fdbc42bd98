"""Distributed training (``train`` workloads) on the Kubernetes backend.

The objects come from :mod:`.train_manifests`: a payload ConfigMap, a headless Service and
an Indexed Job of one pod per node (or, with ``operator: kubeflow``, a Kubeflow Trainer
TrainJob or a PyTorchJob, whichever the cluster has: :mod:`.trainjob`). The cluster is the
source of truth, as for pods:

- status: the Job and all its pods through the backend's tracker. Running while any node
  runs; pending says which node waits and why; failed names the node (completion index)
  that failed first, its exit code and the last line its ranks printed (``[rank R] …``);
- logs: every node's pod is followed at once and the streams are merged line by line (the
  runner prefixes each line with its rank); the ``--get`` marker line is filtered out;
- results: the marker line, printed by whichever pod holds global rank 0 (c10d rendezvous
  assigns ranks, so it is looked for in every node's log, index 0 first);
- cancel and rm: the Job (or TrainJob, PyTorchJob), the Service, the ConfigMap and the
  NetworkPolicy.
"""

from __future__ import annotations

import codecs
import functools
import queue
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ...errors import BackendUnavailable, NotFound, WorkbenchError
from ...runtime import cell
from ...spec import TrainSpec
from ...store import FAILED, PENDING, RUNNING, SUCCEEDED, Workload
from ..base import Payload
from .client import Resource, register_resource
from .logs import MarkerFilter, results_secret_name, take_waiting
from .manifests import CONTAINER_NAME, container_resources
from .preflight import check_fits
from .status import Observed, observe, pod_pending_reason, terminated, termination_reason, timestamp
from .train_manifests import KUBEFLOW_CONTAINER, KUBEFLOW_GROUP
from .trainjob import KUBEFLOW_API_INFO, TRAINJOB, KubeflowTraining, kubeflow_missing
from .trainjob_manifests import NODE, node_pod

if TYPE_CHECKING:
    from .backend import KubernetesBackend

INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
KUBEFLOW_TYPE_LABEL = "training.kubeflow.org/replica-type"
KUBEFLOW_INDEX_LABEL = "training.kubeflow.org/replica-index"
PYTORCHJOB = Resource("PyTorchJob", KUBEFLOW_GROUP, "v1", "pytorchjobs", custom=True)
_RANK_LINE = re.compile(r"^\[rank \d+\] \S")
_RANKED = re.compile(r"^\[rank (\d+)\] ?(.*)$")


def traceback_banner(log: str) -> str:
    """The traceback of the rank that failed first in a node's log, under the banner the local
    runner prints (empty when the log holds none).

    Every line a rank prints carries ``[rank R]``; the rank whose traceback starts first is
    the one that failed first (the others usually fail because it went away).
    """
    lines: dict[int, list[str]] = {}
    started: dict[int, int] = {}
    for number, line in enumerate(log.splitlines()):
        match = _RANKED.match(line)
        if not match:
            continue
        rank, text = int(match.group(1)), match.group(2)
        if text.startswith("Traceback (most recent call last)") and rank not in started:
            started[rank] = number
            lines[rank] = []
        if rank in started:
            lines[rank].append(text)
    if not started:
        return ""
    first = min(started, key=started.__getitem__)
    body = "\n".join(lines[first]).rstrip()
    return f"\n==== rank {first} failed first; its traceback ====\n{body}\n"


def node_index(pod: Mapping[str, Any]) -> int:
    """The node a pod is: its completion index (Job) or Master 0, Worker i+1 (PyTorchJob)."""
    meta = pod.get("metadata", {})
    labels = {**(meta.get("labels") or {}), **(meta.get("annotations") or {})}
    if INDEX_LABEL in labels:
        return int(labels[INDEX_LABEL])
    replica = int(labels.get(KUBEFLOW_INDEX_LABEL, 0))
    return replica + 1 if labels.get(KUBEFLOW_TYPE_LABEL, "").lower() == "worker" else replica


def _phase(pod: Mapping[str, Any]) -> str:
    return str(pod.get("status", {}).get("phase") or "")


#: Seconds a failed job whose ended nodes all lost a peer waits for the others to end (then
#: the node that failed on its own is named, not one that noticed it going away).
_PEER_WAIT = 30.0
#: Seconds after a node's exit before its log is read to name the failing node.
_LOG_SETTLE = 3.0
#: How a rank's last line reads when it failed only because a peer went away first.
LOST_PEER = re.compile(cell.LOST_PEER, re.I)


def first_failure(
    pods: Sequence[Mapping[str, Any]], lost_peer: Callable[[Mapping[str, Any]], bool] | None = None
) -> Mapping[str, Any] | None:
    """The pod that failed first: a node whose runner said why it failed (its termination
    message, unless that says a peer went away: the other nodes failed because of it, whenever
    they ended), then a node that did not just lose a peer (its message or its last line: its
    ranks failed because another node went away, whenever they noticed), then an exit of its
    own before one by a signal, then the earliest, then the lower index."""
    failed = [p for p in pods if (terminated(p) or {}).get("exitCode") not in (None, 0)]

    def order(pod: Mapping[str, Any]) -> tuple[bool, bool, bool, float, int]:
        state = terminated(pod) or {}
        finished = timestamp(state.get("finishedAt")) or 0.0
        reason = termination_reason(pod)
        said = bool(reason) and not LOST_PEER.search(reason)  # a reason of its own
        return (
            not said,
            _peer_lost(pod, lost_peer),
            int(state["exitCode"]) >= 128,
            finished,
            node_index(pod),
        )

    return min(failed, key=order, default=None)


def _peer_lost(pod: Mapping[str, Any], lost_peer: Callable[[Mapping[str, Any]], bool] | None) -> bool:
    """Whether a failed node says it failed because a peer went away: in its termination message
    (a rank's "Connection reset by peer" can be the message of the node that did not fail
    first), or in its last line (``lost_peer``)."""
    if LOST_PEER.search(termination_reason(pod) or ""):
        return True
    return bool(lost_peer and lost_peer(pod))


def observe_train(
    job: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    nodes: int,
    lost_peer: Callable[[Mapping[str, Any]], bool] | None = None,
) -> Observed | None:
    """A training job's status from its Job and every node's pods; None when the Job is gone."""
    base = observe(job, pods)
    if base is None or base.status == SUCCEEDED or (job or {}).get("spec", {}).get("suspend"):
        return base
    if base.status == FAILED:
        pod = first_failure(pods, lost_peer)
        if pod is None or base.message.startswith("timed out"):
            return base
        if (
            lost_peer is not None
            and _peer_lost(pod, lost_peer)
            and (
                any(terminated(p) is None and _phase(p) in ("Pending", "Running") for p in pods)
                or len({node_index(p) for p in pods}) < nodes  # a node not listed (yet)
            )
            and time.time() - (base.ended or 0.0) < _PEER_WAIT
        ):  # only a node that lost its peer has ended yet: the node that failed is ending too
            wait = f"node {node_index(pod)} lost a peer; waiting for the other nodes to end"
            return Observed(RUNNING, wait, None, base.started)
        ended = timestamp((terminated(pod) or {}).get("finishedAt")) or 0.0
        if lost_peer is not None and len(pods) > 1 and time.time() - ended < _LOG_SETTLE:
            # a node's last lines can reach its log after its exit does (a CI run named rank 0's
            # 'Connection reset by peer' read too early): name the failing node once they are in
            wait = f"node {node_index(pod)} failed; reading the nodes' last lines"
            return Observed(RUNNING, wait, None, base.started)
        code = int((terminated(pod) or {})["exitCode"])
        message = f"node {node_index(pod)} ({pod['metadata']['name']}) exited with code {code}"
        return Observed(FAILED, message, code, base.started, base.ended, termination_reason(pod))
    running = [p for p in pods if _phase(p) == "Running"]
    waiting = sorted((p for p in pods if _phase(p) == "Pending"), key=node_index)
    if running:
        message = f"{len(running)}/{nodes} nodes running"
        if waiting:
            message += f"; node {node_index(waiting[0])} waits: {pod_pending_reason(waiting[0])}"
        return Observed(RUNNING, message, None, base.started)
    if waiting:
        reason = pod_pending_reason(waiting[0])
        reason = "starting the container" if reason == "starting" else reason
        return Observed(PENDING, f"node {node_index(waiting[0])}: {reason}")
    return base


def as_job(obj: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A PyTorchJob in the shape :func:`observe` reads (its conditions as a Job's)."""
    if obj is None:
        return None
    status = obj.get("status") or {}
    conditions = []
    for cond in status.get("conditions") or []:
        kind = {"Succeeded": "Complete", "Failed": "Failed"}.get(str(cond.get("type")))
        if kind:
            conditions.append({**cond, "type": kind})
            if kind == "Failed" and "active longer than specified deadline" in str(cond.get("message")):
                conditions[-1]["reason"] = "DeadlineExceeded"  # the operator's reason is PyTorchJobFailed
    suspend = ((obj.get("spec") or {}).get("runPolicy") or {}).get("suspend")
    return {
        "metadata": obj.get("metadata") or {},
        "spec": {"suspend": bool(suspend)},
        "status": {"startTime": status.get("startTime"), "conditions": conditions},
    }


class TrainJobs:
    """The training half of :class:`~.backend.KubernetesBackend` (which dispatches here by kind)."""

    def __init__(self, backend: KubernetesBackend) -> None:
        self.backend = backend
        self.store = backend.store
        register_resource(PYTORCHJOB)
        self.kubeflow = KubeflowTraining(backend)

    @property
    def client(self) -> Any:
        return self.backend.client

    # -- submit ----------------------------------------------------------------------------------------
    def submit(
        self, workload_id: str, spec: TrainSpec, payload: Payload, docs: list[dict[str, Any]]
    ) -> Workload:
        if spec.operator == "kubeflow":  # what the cluster has; refusals create nothing
            docs = self.kubeflow.prepare(workload_id, spec, payload, docs)
        job = docs[-1]
        if job["kind"] == "PyTorchJob":
            template = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]
        else:
            template = node_pod(job) if job["kind"] == TRAINJOB.kind else job["spec"]["template"]
        requests = container_resources(spec.resources, self.backend.kube).get("limits", {})
        check_fits(requests, template["spec"].get("nodeSelector", {}), self.client.nodes())
        run_dir = self.backend.settings.runs_dir / workload_id
        info = {KUBEFLOW_API_INFO: job["kind"]} if spec.operator == "kubeflow" else {}
        self.backend.insert_pending(workload_id, spec, payload, f"creating the {job['kind']}", info)
        try:
            self.backend.keep_payload(run_dir, spec, payload)
            try:
                created = self.client.create_all(docs)
            except BackendUnavailable as exc:
                gone = exc.value in (PYTORCHJOB.plural, TRAINJOB.plural)  # uninstalled since
                raise kubeflow_missing() if gone else exc from None
            for obj in created[:-1]:  # the Job's TTL (or deletion) then removes them too
                self.backend.adopt(obj, created[-1])
        except BaseException:
            self.store.delete(workload_id)
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        return self.store.get(workload_id)

    # -- state -----------------------------------------------------------------------------------------
    def _kubeflow(self, workload: Workload) -> str | None:
        """The Kubeflow kind that runs the workload (TrainJob or PyTorchJob); None: an Indexed Job."""
        if workload.spec.get("operator") != "kubeflow":
            return None
        return str(workload.info.get(KUBEFLOW_API_INFO) or PYTORCHJOB.kind)  # older records: v1

    def job_of(self, workload: Workload, *, fresh: bool = True) -> dict[str, Any] | None:
        if not self._kubeflow(workload):
            return self.backend.job(workload.id, fresh=fresh)
        if self._kubeflow(workload) == TRAINJOB.kind:
            return self.kubeflow.job_of(workload.id, fresh=fresh)
        try:
            return as_job(self.client.get(PYTORCHJOB.kind, workload.id))
        except NotFound:  # also when the operator (and so its jobs) is gone
            return None

    def pods(self, workload_id: str, *, fresh: bool = True) -> list[dict[str, Any]]:
        return sorted(self.backend.pods(workload_id, fresh=fresh), key=node_index)

    def refresh(self, workload: Workload) -> Workload:
        nodes = int(workload.spec.get("nodes") or 1)
        pods = self.pods(workload.id)
        job = self.job_of(workload)
        lost_peer = self.lost_peer(workload)
        observed = observe_train(job, pods, nodes, lost_peer)
        if observed is not None and observed.status == FAILED and first_failure(pods) is None:
            # the job (a PyTorchJob is read directly) can be ahead of the pods' list or watch:
            # read the pods once more so the failure names the node and its exit code
            self.backend.tracker.relist("Pod")
            pods = self.pods(workload.id)
            observed = observe_train(job, pods, nodes, lost_peer)

        def detail() -> str:
            failed = first_failure(pods, lost_peer)
            return self._last_line(workload, failed["metadata"]["name"]) if failed else ""

        return self.backend.record(workload, observed, detail)

    def lost_peer(self, workload: Workload) -> Callable[[Mapping[str, Any]], bool]:
        """Whether a failed node's last line says it failed because a peer went away first."""

        @functools.cache
        def last_line(name: str) -> str:
            return self._last_line(workload, name)

        return lambda pod: bool(LOST_PEER.search(last_line(pod["metadata"]["name"])))

    def _container(self, workload: Workload) -> str:
        return {TRAINJOB.kind: NODE, PYTORCHJOB.kind: KUBEFLOW_CONTAINER}.get(
            self._kubeflow(workload) or "", CONTAINER_NAME
        )

    def _log(self, workload: Workload, pod: str) -> str:
        data = b"".join(self.client.logs(pod, container=self._container(workload)))
        return data.decode("utf-8", "replace")

    def _last_line(self, workload: Workload, pod: str) -> str:
        """The failing node's last line from a rank (its exception), else its last line."""
        try:
            text = self.backend.marker(workload.id).feed(self._log(workload, pod) + "\n")
        except WorkbenchError:
            return ""
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        ranked = [line for line in lines if _RANK_LINE.match(line)]
        chosen = ranked or lines
        return chosen[-1][:300] if chosen else ""

    # -- output ----------------------------------------------------------------------------------------
    def logs(self, workload: Workload, *, follow: bool = False) -> Iterator[str]:
        if follow:
            yield from self._follow(workload)
            return
        for pod in self.pods(workload.id):
            if _phase(pod) in ("Running", "Succeeded", "Failed"):
                marker = self.backend.marker(workload.id)
                text = marker.feed(self._log(workload, pod["metadata"]["name"])) + marker.close()
                if text:
                    yield text if text.endswith("\n") else text + "\n"
        banner = self.failure_banner(self.store.get(workload.id))
        if banner:
            yield banner

    def failure_banner(self, workload: Workload) -> str:
        """For a failed job, the failing rank's traceback from the node that failed first, under
        a banner at the end of the output, as the local runner prints it."""
        if workload.status != FAILED:
            return ""
        failed = first_failure(self.pods(workload.id, fresh=False), self.lost_peer(workload))
        if failed is None:
            return ""
        try:
            return traceback_banner(
                self.backend.marker(workload.id).feed(self._log(workload, failed["metadata"]["name"]) + "\n")
            )
        except WorkbenchError:
            return ""

    def _pump(
        self, workload: Workload, pod: str, lines: queue.Queue[str | None], marker: MarkerFilter
    ) -> None:
        """Put a pod's log on ``lines`` as whole lines (``marker`` filtered), then None."""
        decoder, pending = codecs.getincrementaldecoder("utf-8")("replace"), ""
        try:
            for chunk in self.client.logs(pod, container=self._container(workload), follow=True):
                pending += marker.feed(decoder.decode(chunk))
                if "\n" in pending:
                    done, _, pending = pending.rpartition("\n")
                    lines.put(done + "\n")
        except WorkbenchError:
            pass
        finally:
            rest = pending + marker.feed(decoder.decode(b"", final=True)) + marker.close()
            if rest:
                lines.put(rest if rest.endswith("\n") else rest + "\n")
            lines.put(None)

    def _follow(self, workload: Workload) -> Iterator[str]:
        lines: queue.Queue[str | None] = queue.Queue()
        streamed: set[str] = set()
        open_streams, said = 0, ""
        self.backend.tracker.watch()  # pods and Jobs come from watches, not one list per turn
        if self._kubeflow(workload) == TRAINJOB.kind:
            self.kubeflow.tracker.watch()
        while True:
            record = self.backend.refresh(self.store.get(workload.id))
            for pod in self.pods(workload.id):
                name = pod["metadata"]["name"]
                if name not in streamed and _phase(pod) in ("Running", "Succeeded", "Failed"):
                    streamed.add(name)
                    open_streams += 1
                    threading.Thread(
                        target=self._pump,
                        args=(record, name, lines, self.backend.marker(record.id)),
                        name=f"workbench-log-{name}",
                        daemon=True,
                    ).start()
            if record.status == PENDING and record.message and record.message != said:
                said = record.message
                yield f"[workbench] {workload.id} pending: {said}\n"
            try:
                item = lines.get(timeout=0.5)
            except queue.Empty:
                if record.done and open_streams == 0:
                    banner = self.failure_banner(record)
                    if banner:
                        yield banner
                    return
                continue
            items, ended = take_waiting(lines, item)
            open_streams -= ended
            yield from items

    def result_logs(self, workload: Workload) -> Iterator[str]:
        """The nodes' logs in the order to look for rank 0's results (usually node 0; c10d decides)."""
        for pod in self.pods(workload.id):
            yield self._log(workload, pod["metadata"]["name"])

    # -- stopping --------------------------------------------------------------------------------------
    def delete_objects(self, workload: Workload) -> None:
        if self._kubeflow(workload):  # its JobSet or pods go with it; no operator: nothing to delete
            self.client.delete(str(self._kubeflow(workload)), workload.id)
        else:
            self.client.delete("Job", workload.id)
            self.client.delete("Service", workload.id)
        self.client.delete("ConfigMap", f"{workload.id}-payload")
        self.client.delete("NetworkPolicy", workload.id)
        if workload.spec.get("get"):
            self.client.delete("Secret", results_secret_name(workload.id))
