"""A workload's status in plain words, from its Job and pods (pure; no I/O).

Pending says why: the scheduler's message ("0/3 nodes are available: 3 Insufficient
nvidia.com/gpu."), an image that cannot be pulled, a missing secret, or a queue that has
not admitted the Job yet. Failed says how: the container's exit code and reason, a
deadline, or the pods the Job gave up on; and why, when the container wrote its
termination message (``Observed.reason``, which the backend prefers to the log's last line).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ...store import FAILED, PENDING, RUNNING, SUCCEEDED

_WAITING_PROBLEMS = {
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
    "RunContainerError",
}


@dataclass(frozen=True)
class Observed:
    """What the cluster says about one workload."""

    status: str
    message: str = ""
    exit_code: int | None = None
    started: float | None = None
    ended: float | None = None
    #: why it failed in the container's own words (its termination message), when it said
    reason: str = ""


def timestamp(value: str | None) -> float | None:
    """RFC 3339 time (``2026-01-02T03:04:05Z``) as seconds since the epoch."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def _main_state(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    for status in statuses:
        if status.get("name") == "main":
            return dict(status.get("state") or {})
    return dict(statuses[0].get("state") or {}) if statuses else {}


def pod_pending_reason(pod: Mapping[str, Any]) -> str:
    """Why a pod is not running yet, in the cluster's own words."""
    scheduled = _condition(pod, "PodScheduled")
    if scheduled and scheduled.get("status") == "False":
        return str(scheduled.get("message") or scheduled.get("reason") or "waiting to be scheduled")
    waiting = _main_state(pod).get("waiting") or {}
    reason = waiting.get("reason")
    if reason:
        message = waiting.get("message")
        return f"{reason}: {message}" if message else str(reason)
    return "starting"


def terminated(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    state = _main_state(pod).get("terminated")
    return dict(state) if state else None


def termination_reason(pod: Mapping[str, Any] | None) -> str:
    """The last line of the main container's termination message (the runner writes one line
    there when it knows why it failed, e.g. a missing ``--get`` value); "" when there is none."""
    message = str((terminated(pod) or {}).get("message") or "") if pod else ""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def observe(job: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]]) -> Observed | None:
    """The status of a pod workload from its Job and the Job's pods; None if the Job is gone."""
    if job is None:
        return None
    status = job.get("status", {})
    started = timestamp(status.get("startTime"))
    latest = max(pods, key=lambda p: p.get("metadata", {}).get("creationTimestamp", ""), default=None)
    last_exit = terminated(latest) if latest else None
    exit_code = last_exit.get("exitCode") if last_exit else None
    complete = _condition(job, "Complete")
    if complete and complete.get("status") == "True":
        return Observed(SUCCEEDED, "", 0, started, timestamp(status.get("completionTime")))
    failed = _condition(job, "Failed")
    if failed and failed.get("status") == "True":
        reason = failed.get("reason", "")
        if reason == "DeadlineExceeded":
            message = f"timed out: {failed.get('message') or 'the Job ran past activeDeadlineSeconds'}"
        elif last_exit:
            message = f"exited with code {exit_code}"
            if last_exit.get("reason") and last_exit.get("reason") not in ("Error", "Completed"):
                message += f" ({last_exit['reason']})"
        else:
            message = f"{reason}: {failed.get('message', '')}".strip(": ")
        ended = timestamp(failed.get("lastTransitionTime")) or (
            timestamp(last_exit.get("finishedAt")) if last_exit else None
        )
        return Observed(FAILED, message, exit_code, started, ended, termination_reason(latest))
    if job.get("spec", {}).get("suspend"):
        queue = job.get("metadata", {}).get("labels", {}).get("kueue.x-k8s.io/queue-name")
        where = f" in queue {queue!r}" if queue else ""
        return Observed(PENDING, f"waiting to be admitted{where} (the Job is suspended)")
    if latest is None:
        return Observed(PENDING, "creating the pod")
    phase = latest.get("status", {}).get("phase")
    if phase == "Running":
        return Observed(RUNNING, "", None, started)
    if phase == "Pending":
        reason = pod_pending_reason(latest)
        problem = reason.split(":", 1)[0] in _WAITING_PROBLEMS
        return Observed(PENDING, reason if reason != "starting" or problem else "starting the container")
    if phase == "Failed" and last_exit:  # the Job controller has not reacted yet, or will retry
        return Observed(RUNNING, f"retrying after exit code {exit_code}", None, started)
    return Observed(RUNNING, "", None, started)
