"""The process kubelet: runs each bound pod's containers as local processes and reports status.

Each container gets its termination message file (``terminationMessagePath``, by default
``/dev/termination-log``): a file of its own under the pod's directory, named by that path in
the container's argv and env; what the process wrote there (its last 4096 bytes) becomes
``state.terminated.message``, or with ``terminationMessagePolicy: FallbackToLogsOnError`` and
an empty file after a failure, the end of its log. :meth:`Kubelet.disrupt` evicts a pod as a
node-pressure eviction or a preemption does: the ``DisruptionTarget`` condition, then the kill.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil

from .cluster import PODS, Cluster, now
from .podfs import (
    ConfigError,
    build_rootfs,
    command_line,
    container_env,
    dns_rewriter,
    process_env,
    translator,
)
from .podips import PodIPs
from .podstatus import TERMINAL, Container, PodRun, pod_status
from .resources import ResourceType
from .store import Obj

#: the kubelet's limits on a termination message: the file's last 4096 bytes; from the log,
#: the last 80 lines or 2048 bytes
MESSAGE_BYTES = 4096
FALLBACK_LINES, FALLBACK_BYTES = 80, 2048
DEFAULT_MESSAGE_PATH = "/dev/termination-log"
#: in the env of every container process: the kill of a container reaches the processes it
#: started in sessions of their own (torchrun's workers), as a container runtime's cgroup does
CONTAINER_TAG = "K8S_EMULATOR_CONTAINER"


def _kill_container(c: Container) -> None:
    """SIGKILL every process of the container ``c`` (by its tag), its process group or not."""
    tag = c.env.get(CONTAINER_TAG)
    if not tag:
        return
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if proc.pid != os.getpid() and proc.environ().get(CONTAINER_TAG) == tag:
                proc.kill()


class Kubelet:
    def __init__(self, cluster: Cluster, pods_rt: ResourceType, root: Path, emulator: Any) -> None:
        self.cluster = cluster
        self.pods_rt = pods_rt
        self.root = root
        self.em = emulator
        self.runs: dict[str, PodRun] = {}
        self.ips = PodIPs()
        cluster.pod_deleted.append(self.on_deleted)

    # lifecycle ---------------------------------------------------------------------------

    def sync(self) -> None:
        for pod in self.cluster.store.list(PODS):
            spec, meta = pod.get("spec") or {}, pod["metadata"]
            if not spec.get("nodeName"):
                continue
            run = self.runs.get(meta["uid"])
            if run is None:
                if (pod.get("status") or {}).get("phase") in TERMINAL:
                    continue
                run = self.runs[meta["uid"]] = PodRun(
                    meta["uid"],
                    meta["namespace"],
                    meta["name"],
                    self.root / "pods" / meta["uid"],
                    [Container(c["name"], c, True) for c in spec.get("initContainers") or []],
                    [Container(c["name"], c, False) for c in spec.get("containers") or []],
                    spec.get("restartPolicy", "Always"),
                    started=now(),
                    started_mono=time.monotonic(),
                    ip="127.0.0.1" if spec.get("hostNetwork") else self.ips.take(),
                )
            self._advance(run, pod)
        for run in list(self.runs.values()):
            if run.gone:
                self._reap(run)

    def _event(self, run: PodRun, pod: Obj, reason: str, message: str, type_: str = "Normal") -> None:
        if (reason, message) not in run.reported:
            run.reported.add((reason, message))
            self.cluster.event(pod, reason, message, type_=type_)

    def _prepare(self, run: PodRun, pod: Obj) -> None:
        pod = {**pod, "status": {**(pod.get("status") or {}), "podIP": run.ip, "podIPs": [{"ip": run.ip}]}}
        rootfs = build_rootfs(self.cluster.store, pod, run.dir, self.em.pvc_root)
        for c in run.containers:
            image = str(c.spec.get("image", ""))
            if image in self.em.bad_images:
                self._event(
                    run,
                    pod,
                    "Failed",
                    f'Failed to pull image "{image}": rpc error: code = NotFound desc = '
                    f'failed to pull and unpack image "{image}": not found',
                    "Warning",
                )
                raise ConfigError("ImagePullBackOff", f'Back-off pulling image "{image}"', "BackOff")
        for c in run.containers:
            env = container_env(self.cluster.store, pod, c.spec)
            paths, hosts = translator(rootfs, c.spec, pod), dns_rewriter(self.cluster.store, run.namespace)

            message_path = str(c.spec.get("terminationMessagePath") or DEFAULT_MESSAGE_PATH)
            message_file = str(self._message_file(run, c))

            def translate(
                text: str,
                paths: Any = paths,
                hosts: Any = hosts,
                mp: str = message_path,
                mf: str = message_file,
            ) -> str:
                return mf if text == mp else str(hosts(paths(text)))

            c.env = {**self.em.node_env, **process_env(pod, env, translate)}
            c.env[CONTAINER_TAG] = f"{run.uid}/{c.name}"  # its processes, whatever session they start
            c.argv = command_line(c.spec, env, translate, self.em.image_entrypoints)
            if not c.argv:
                raise ConfigError(
                    "CreateContainerError",
                    f'container "{c.name}" has no command (the emulator '
                    "cannot read the image's entrypoint; set command or Emulator.image_entrypoints)",
                )
            workdir = str(c.spec.get("workingDir") or "")
            cwd = translate(workdir) if workdir else str(rootfs)
            if workdir and cwd == workdir:
                cwd = str(rootfs / workdir.strip("/"))
            Path(cwd).mkdir(parents=True, exist_ok=True)
            c.cwd = cwd
        run.prepared = True

    def _message_file(self, run: PodRun, c: Container) -> Path:
        return run.dir / "termination" / c.name

    def _message(self, run: PodRun, c: Container, code: int) -> str | None:
        """The termination message of a container that just ended (see the module doc)."""
        try:
            with self._message_file(run, c).open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - MESSAGE_BYTES))
                data = fh.read()
        except OSError:
            data = b""
        if (
            not data.strip()
            and code != 0
            and c.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        ):
            with contextlib.suppress(OSError, IndexError):
                lines = c.logs[-1].read_bytes().splitlines(keepends=True)[-FALLBACK_LINES:]
                data = b"".join(lines)[-FALLBACK_BYTES:]
        return data.decode("utf-8", "replace") or None

    def disrupt(self, namespace: str, name: str, reason: str, message: str) -> bool:
        """Evict the pod: the ``DisruptionTarget`` condition, then its processes are killed and
        it ends Failed (it is not deleted: the Job controller reads its failure policy first)."""
        run = self.find(namespace, name)
        if run is None or run.gone:
            return False
        run.disruption, run.disrupted_at = (reason, message), now()
        self._signal(run, signal.SIGKILL)
        return True

    def _start(self, run: PodRun, pod: Obj, c: Container) -> None:
        log = run.dir / "logs" / f"{c.name}-{len(c.logs)}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        message_file = self._message_file(run, c)  # a new container's file starts empty
        message_file.parent.mkdir(parents=True, exist_ok=True)
        message_file.write_bytes(b"")
        message_file.chmod(0o666)
        c.logs.append(log)
        c.started, c.finished, c.exit_code, c.signal, c.reason, c.message = (
            now(),
            None,
            None,
            None,
            None,
            None,
        )
        c.restart_at = None
        c.readiness = c.startup = None
        with open(log, "ab") as out:
            try:
                c.proc = subprocess.Popen(
                    c.argv,
                    env=c.env,
                    cwd=c.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                c.proc, c.exit_code, c.reason, c.finished = None, 128, "StartError", now()
                c.message = f"failed to create containerd task: exec: {exc}"
                self._event(run, pod, "Failed", f"Error: {c.message}", "Warning")
                return
        image = c.spec.get("image", "")
        self._event(run, pod, "Pulled", f'Container image "{image}" already present on machine')
        self._event(run, pod, "Created", f"Created container: {c.name}")
        self._event(run, pod, "Started", f"Started container {c.name}")

    def _poll(self, run: PodRun, c: Container) -> None:
        if c.proc is None or c.exit_code is not None:
            return
        code = c.proc.poll()
        if code is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(c.proc.pid, signal.SIGKILL)  # what the container left behind goes with it
        c.finished = now()
        c.exit_code = 128 - code if code < 0 else code
        c.signal = -code if code < 0 else None
        c.reason = "Completed" if code == 0 else "Error"
        c.message = self._message(run, c, c.exit_code)

    def _maybe_restart(self, run: PodRun, pod: Obj, c: Container) -> None:
        if c.exit_code is None or run.gone or run.deadline_hit or run.disruption:
            return
        again = run.policy == "Always" or (run.policy == "OnFailure" and c.exit_code != 0)
        if c.init and run.policy == "Always":
            again = c.exit_code != 0
        if not again:
            return
        if c.restart_at is None:
            c.restart_at = time.monotonic() + self.em.restart_delay * 2 ** min(c.restarts, 6)
            self._event(
                run,
                pod,
                "BackOff",
                f"Back-off restarting failed container {c.name} in pod {run.name}_{run.namespace}({run.uid})",
                "Warning",
            )
        elif time.monotonic() >= c.restart_at:
            c.last = c.terminated()
            c.restarts += 1
            self._start(run, pod, c)

    def _advance(self, run: PodRun, pod: Obj) -> None:
        phase = (pod.get("status") or {}).get("phase")
        if phase in TERMINAL and not any(c.running for c in run.containers):
            return
        if not run.prepared and not run.gone:
            try:
                self._prepare(run, pod)
            except ConfigError as exc:
                for c in run.containers:
                    c.waiting = (exc.reason, exc.message)
                self._event(
                    run,
                    pod,
                    exc.event_reason,
                    exc.message if exc.event_reason != "Failed" else f"Error: {exc.message}",
                    "Warning",
                )
                self._write(run, pod)
                return
        self._check_deadline(run, pod)
        for c in run.containers:
            self._poll(run, c)
        if not run.gone and not run.deadline_hit and not run.disruption:
            for c in run.init:
                self._maybe_restart(run, pod, c)
                if c.exit_code == 0:
                    continue
                if c.proc is None and c.exit_code is None:
                    self._start(run, pod, c)
                break
            else:
                for c in run.main:
                    if c.proc is None and c.exit_code is None:
                        self._start(run, pod, c)
                    self._maybe_restart(run, pod, c)
        self._write(run, pod)

    def _check_deadline(self, run: PodRun, pod: Obj) -> None:
        limit = (pod.get("spec") or {}).get("activeDeadlineSeconds")
        if limit is None or run.started is None or run.deadline_hit:
            return
        if time.monotonic() - run.started_mono < float(limit):
            return
        run.deadline_hit = True
        self._signal(run, signal.SIGKILL)
        self._event(
            run,
            pod,
            "DeadlineExceeded",
            "Pod was active on the node longer than the specified deadline",
            "Warning",
        )

    def _write(self, run: PodRun, pod: Obj) -> None:
        current = self.cluster.store.get(PODS, run.namespace, run.name)
        if current is None or current["metadata"]["uid"] != run.uid:
            return
        status = pod_status(run, current.get("status") or {})
        if status != current.get("status"):
            changed = copy.deepcopy(current)
            changed["status"] = status
            self.cluster.write(self.pods_rt, changed)

    # termination -------------------------------------------------------------------------

    def _signal(self, run: PodRun, sig: int) -> None:
        for c in run.containers:
            if c.running and c.proc is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(c.proc.pid, sig)
                if sig == signal.SIGKILL:
                    _kill_container(c)

    def on_deleted(self, pod: Obj, grace: float) -> None:
        run = self.runs.get(pod["metadata"]["uid"])
        if run is None:
            return
        run.gone = True
        for c in run.containers:
            if c.running:
                self.cluster.event(pod, "Killing", f"Stopping container {c.name}")
        run.kill_at = time.monotonic() + grace
        if grace <= 0:
            self._signal(run, signal.SIGKILL)
        elif not self.em.prober.pre_stop(run, grace):  # the prober sends SIGTERM after the hooks
            self._signal(run, signal.SIGTERM)

    def _reap(self, run: PodRun) -> None:
        for c in run.containers:
            self._poll(run, c)
        if any(c.running for c in run.containers):
            if run.kill_at is not None and time.monotonic() >= run.kill_at:
                self._signal(run, signal.SIGKILL)
            return
        self.runs.pop(run.uid, None)
        shutil.rmtree(run.dir, ignore_errors=True)

    def shutdown(self) -> None:
        """Kill every process group and reap it (called once the event loop has stopped)."""
        for run in list(self.runs.values()):
            self._signal(run, signal.SIGKILL)
            for c in run.containers:
                if c.proc is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        c.proc.wait(timeout=5)
        self.runs.clear()

    def find(self, namespace: str, name: str) -> PodRun | None:
        found = [r for r in self.runs.values() if r.namespace == namespace and r.name == name]
        live = [r for r in found if not r.gone]
        return (live or found or [None])[-1]
