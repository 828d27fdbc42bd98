"""The process kubelet's record of a pod and the pod status it reports from it."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .cluster import now
from .store import Obj

TERMINAL = ("Succeeded", "Failed")


@dataclass(eq=False)
class Container:
    name: str
    spec: Obj
    init: bool
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    proc: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)
    restarts: int = 0
    started: str | None = None
    finished: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None
    message: str | None = None
    last: Obj | None = None
    waiting: tuple[str, str] = ("ContainerCreating", "")
    restart_at: float | None = None
    #: the probes' verdicts on the current run of the container (None: none yet); see probes.py
    readiness: bool | None = None
    startup: bool | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.exit_code is None

    @property
    def started_ok(self) -> bool:
        return self.running and ("startupProbe" not in self.spec or bool(self.startup))

    @property
    def ready(self) -> bool:
        return self.started_ok and ("readinessProbe" not in self.spec or bool(self.readiness))

    def terminated(self) -> Obj:
        state: Obj = {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": self.started,
            "finishedAt": self.finished,
        }
        if self.proc is not None:
            state["containerID"] = f"emulator://{self.proc.pid}"
        if self.signal:
            state["signal"] = self.signal
        if self.message:
            state["message"] = self.message
        return state


@dataclass(eq=False)
class PodRun:
    uid: str
    namespace: str
    name: str
    dir: Path
    init: list[Container]
    main: list[Container]
    policy: str
    prepared: bool = False
    started: str | None = None
    started_mono: float = 0.0
    reported: set[tuple[str, str]] = field(default_factory=set)
    gone: bool = False
    kill_at: float | None = None
    deadline_hit: bool = False
    #: the pod's IP: a loopback address of its own (127.0.0.1 with hostNetwork)
    ip: str = "127.0.0.1"
    #: (reason, message) of the DisruptionTarget condition once it was evicted or preempted
    disruption: tuple[str, str] | None = None
    disrupted_at: str | None = None

    @property
    def containers(self) -> list[Container]:
        return [*self.init, *self.main]


def phase(run: PodRun) -> str:
    if (run.deadline_hit or run.disruption) and not any(c.running for c in run.containers):
        return "Failed"
    init_failed = any(
        c.exit_code not in (None, 0) and c.restart_at is None and run.policy == "Never" for c in run.init
    )
    if init_failed:
        return "Failed"
    if (
        not run.prepared
        or any(c.exit_code != 0 for c in run.init)
        or any(c.proc is None and c.exit_code is None for c in run.main)
    ):
        return "Pending"
    if all(c.exit_code is not None and c.restart_at is None for c in run.main):
        restarting = run.policy == "Always" or (
            run.policy == "OnFailure" and any(c.exit_code for c in run.main)
        )
        if not restarting or run.gone:
            return "Succeeded" if all(c.exit_code == 0 for c in run.main) else "Failed"
    return "Running"


def container_status(run: PodRun, c: Container) -> Obj:
    state: Obj
    if c.running:
        state = {"running": {"startedAt": c.started}}
    elif c.exit_code is not None and c.restart_at is None:
        state = {"terminated": c.terminated()}
    elif c.exit_code is not None:
        state = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off 10s restarting failed "
                f"container={c.name} pod={run.name}_{run.namespace}({run.uid})",
            }
        }
    else:
        reason, message = c.waiting
        if run.prepared:
            reason, message = ("PodInitializing" if run.init and not c.init else "ContainerCreating"), ""
        state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
    image = c.spec.get("image", "")
    status: Obj = {
        "name": c.name,
        "image": image,
        "imageID": f"emulator://{image}",
        "ready": c.ready,
        "started": c.started_ok,
        "restartCount": c.restarts,
        "state": state,
        "lastState": {"terminated": c.last} if c.last else {},
    }
    if c.proc is not None:
        status["containerID"] = f"emulator://{c.proc.pid}"
    return status


def pod_status(run: PodRun, old: Obj) -> Obj:
    """The status the kubelet reports for ``run`` (``old``: the stored status)."""
    current_phase = phase(run)
    status: Obj = {
        "phase": current_phase,
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "qosClass": old.get("qosClass", "BestEffort"),
    }
    if run.prepared:
        status.update({"podIP": run.ip, "podIPs": [{"ip": run.ip}]})
    status["startTime"] = run.started or old.get("startTime") or now()
    if run.deadline_hit:
        status.update(
            {
                "reason": "DeadlineExceeded",
                "message": "Pod was active on the node longer than the specified deadline",
            }
        )
    all_ready = current_phase == "Running" and all(c.ready for c in run.main)
    inited = all(c.exit_code == 0 for c in run.init)
    unready = [c.name for c in run.main if not c.ready]
    incomplete = [c.name for c in run.init if c.exit_code != 0]
    done_reason = "PodCompleted" if current_phase in TERMINAL else "ContainersNotReady"
    wanted = [
        ("PodReadyToStartContainers", run.prepared, None, None),
        (
            "Initialized",
            inited,
            "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(incomplete)}]",
        ),
        ("Ready", all_ready, done_reason, f"containers with unready status: [{' '.join(unready)}]"),
        (
            "ContainersReady",
            all_ready,
            done_reason,
            f"containers with unready status: [{' '.join(unready)}]",
        ),
    ]
    previous = {c["type"]: c for c in old.get("conditions") or []}
    conditions = []
    for type_, ok, reason, message in wanted:
        value = "True" if ok else "False"
        before = previous.get(type_) or {}
        cond: Obj = {
            "type": type_,
            "status": value,
            "lastProbeTime": None,
            "lastTransitionTime": before.get("lastTransitionTime")
            if before.get("status") == value
            else now(),
        }
        if not ok and reason:
            cond.update({"reason": reason, "message": message})
        conditions.append(cond)
    if "PodScheduled" in previous:
        conditions.append(previous["PodScheduled"])
    if run.disruption is not None:  # as the kubelet (or the scheduler) marks it before the kill
        reason, message = run.disruption
        conditions.append(
            {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": reason,
                "message": message,
                "lastProbeTime": None,
                "lastTransitionTime": run.disrupted_at,
            }
        )
    status["conditions"] = conditions
    if run.init:
        status["initContainerStatuses"] = [container_status(run, c) for c in run.init]
    status["containerStatuses"] = [container_status(run, c) for c in run.main]
    return status
