"""The process kubelet's prober and preStop hooks.

Probes (``startupProbe``, ``readinessProbe``, ``livenessProbe``) of every running container
run as tasks on the emulator's loop, one per probe and run of the container, as the kubelet's
workers do: after ``initialDelaySeconds``, every ``periodSeconds``; ``httpGet`` (path, port by
number or by the container port's name, host (default: the pod IP), scheme, httpHeaders;
success is a status in [200, 400) within ``timeoutSeconds``), ``tcpSocket`` (a connection
opens) and ``exec`` (the command, run here with the container's env, exits 0). ``grpc``
probes are not emulated (they always succeed). ``successThreshold`` successes in a row make a
container ready, ``failureThreshold`` failures make it not ready (readiness) or kill it so the
kubelet restarts it (liveness, and a startup probe that never passes). Readiness and liveness
start once the startup probe passed. The container's ``ready``/``started`` status and the
pod's Ready condition follow (podstatus.py). ``Emulator.probe_scale`` multiplies
initialDelaySeconds and periodSeconds (0.1 makes a 1 s period 0.1 s) for fast tests.

preStop hooks (``exec``, ``httpGet``, ``sleep``) run when a pod is deleted with a grace
period: each container gets SIGTERM once its hook returned (the kubelet sends SIGKILL when
the grace period ends, as before), so ``preStop: exec: [sleep, N]`` keeps a container serving
for N seconds after its pod left the Endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import traceback
from typing import TYPE_CHECKING, Any

import aiohttp

from .podfs import command_line
from .podstatus import Container, PodRun
from .store import Obj

if TYPE_CHECKING:
    from .emulator import Emulator

KINDS = ("startupProbe", "readinessProbe", "livenessProbe")
Key = tuple[str, str, str]


def _port(c: Container, port: Any) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for item in c.spec.get("ports") or []:
        if item.get("name") == port:
            return int(item["containerPort"])
    raise ValueError(f"unknown port name {port!r}")


def _kill(c: Container, sig: int) -> None:
    if c.running and c.proc is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(c.proc.pid, sig)


class Prober:
    def __init__(self, emulator: Emulator) -> None:
        self.em = emulator
        self.tasks: dict[Key, tuple[tuple[int, int], asyncio.Task[None]]] = {}
        self.hooks: set[asyncio.Task[None]] = set()
        self.hook_procs: set[subprocess.Popen[bytes]] = set()
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(force_close=True)  # probes do not keep connections
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        return self._session

    async def close(self) -> None:
        for _, task in self.tasks.values():
            task.cancel()
        for task in list(self.hooks):
            task.cancel()
        for proc in list(self.hook_procs):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self._session is not None:
            await self._session.close()

    # probe workers -----------------------------------------------------------------------

    def sync(self) -> None:
        """Start a worker for each probe of each running container; stop the stale ones."""
        wanted: set[Key] = set()
        for run in self.em.kubelet.runs.values():
            for c in run.main:
                if not c.running or run.gone or c.proc is None:
                    continue
                for kind in KINDS:
                    probe = c.spec.get(kind)
                    if probe is None or (kind != "startupProbe" and not c.started_ok):
                        continue
                    key, instance = (run.uid, c.name, kind), (c.restarts, c.proc.pid)
                    wanted.add(key)
                    current = self.tasks.get(key)
                    if current is not None and current[0] == instance:
                        continue  # running, or finished (a passed startup probe, a killed container)
                    if current is not None:
                        current[1].cancel()
                    task = asyncio.get_running_loop().create_task(self._guard(run, c, kind, probe))
                    self.tasks[key] = (instance, task)
        for key in [k for k in self.tasks if k not in wanted]:
            self.tasks.pop(key)[1].cancel()

    async def _guard(self, run: PodRun, c: Container, kind: str, probe: Obj) -> None:
        try:
            await self._work(run, c, kind, probe)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.em.internal_errors.append(traceback.format_exc())

    async def _work(self, run: PodRun, c: Container, kind: str, probe: Obj) -> None:
        scale = self.em.probe_scale
        period = max(float(probe.get("periodSeconds", 10)) * scale, 0.01)
        success_needed = int(probe.get("successThreshold", 1))
        failure_limit = int(probe.get("failureThreshold", 3))
        await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)) * scale)
        successes = failures = 0
        label = kind.removesuffix("Probe").capitalize()
        while c.running and not run.gone:
            ok, why = await self.check(run, c, probe)
            if not c.running or run.gone:
                return
            successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
            if not ok and failures in (1, failure_limit):
                self._event(run, f"{label} probe failed: {why}", "Unhealthy")
            if kind == "readinessProbe":
                verdict = True if ok and successes >= success_needed else None
                verdict = False if not ok and failures >= failure_limit else verdict
                if verdict is not None and c.readiness != verdict:
                    c.readiness = verdict
                    self.em.wake()
            elif kind == "startupProbe" and ok:
                c.startup = True
                self.em.wake()
                return
            elif not ok and failures >= failure_limit:
                self._restart(run, c, label.lower())
                return
            await asyncio.sleep(period)

    def _restart(self, run: PodRun, c: Container, kind: str) -> None:
        """Kill a container that failed its liveness (or startup) probe; the kubelet restarts it."""
        self._event(run, f"Container {c.name} failed {kind} probe, will be restarted", "Killing")
        _kill(c, signal.SIGTERM)
        grace = float(self._pod(run).get("spec", {}).get("terminationGracePeriodSeconds", 30))
        proc = c.proc

        def hard_kill() -> None:
            if c.proc is proc:
                _kill(c, signal.SIGKILL)

        asyncio.get_running_loop().call_later(grace, hard_kill)

    def _pod(self, run: PodRun) -> Obj:
        pod = self.em.store.get(("", "pods"), run.namespace, run.name)
        return pod if pod is not None and pod["metadata"]["uid"] == run.uid else {"metadata": {}}

    def _event(self, run: PodRun, message: str, reason: str) -> None:
        pod = self._pod(run)
        if pod["metadata"]:
            self.em.cluster.event(
                pod, reason, message, type_="Warning" if reason == "Unhealthy" else "Normal"
            )

    async def check(self, run: PodRun, c: Container, probe: Obj) -> tuple[bool, str]:
        """(passed, why not) of one probe (or hook handler) against the container."""
        timeout = float(probe.get("timeoutSeconds", 1))
        try:
            if "httpGet" in probe:
                return await self._http(run, c, probe["httpGet"], timeout)
            if "tcpSocket" in probe:
                spec = probe["tcpSocket"]
                host, port = spec.get("host") or run.ip, _port(c, spec.get("port"))
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
                writer.close()
                return True, ""
            if "exec" in probe:
                code = await self._exec(c, (probe["exec"] or {}).get("command") or [], timeout)
                return code == 0, f"command exited with {code}"
        except (OSError, TimeoutError, ValueError, aiohttp.ClientError) as exc:
            return False, str(exc) or type(exc).__name__
        return True, ""

    async def _http(self, run: PodRun, c: Container, spec: Obj, timeout: float) -> tuple[bool, str]:
        scheme = str(spec.get("scheme") or "HTTP").lower()
        path = str(spec.get("path") or "/")
        url = f"{scheme}://{spec.get('host') or run.ip}:{_port(c, spec.get('port'))}/{path.lstrip('/')}"
        headers = {"User-Agent": "kube-probe/1.33", "Accept": "*/*"}
        headers.update({h["name"]: h.get("value", "") for h in spec.get("httpHeaders") or []})
        request = self.session().get(
            url, headers=headers, ssl=False, timeout=aiohttp.ClientTimeout(total=timeout)
        )
        try:
            async with request as answer:
                await answer.read()
        except aiohttp.ClientConnectorError as exc:  # worded as the kubelet's Go client does
            where = f"{exc.host}:{exc.port}"
            refused = isinstance(exc.os_error, ConnectionRefusedError)
            return False, f'Get "{url}": dial tcp {where}: connect: ' + (
                "connection refused" if refused else str(exc)
            )
        except TimeoutError:
            return (
                False,
                f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)',
            )
        if 200 <= answer.status < 400:
            return True, ""
        return False, f"HTTP probe failed with statuscode: {answer.status}"

    async def _exec(self, c: Container, command: list[str], timeout: float) -> int | None:
        argv = command_line({"command": command}, c.env, lambda text: text, {})
        proc = subprocess.Popen(
            argv,
            env=c.env,
            cwd=c.cwd or None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.hook_procs.add(proc)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while proc.poll() is None:
                if loop.time() >= deadline:
                    raise TimeoutError(f"command timed out after {timeout:g}s")
                await asyncio.sleep(0.02)
            return proc.returncode
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            self.hook_procs.discard(proc)

    # preStop -----------------------------------------------------------------------------

    def pre_stop(self, run: PodRun, grace: float) -> bool:
        """Run the preStop hooks of the pod's running containers, then SIGTERM each; False: none."""
        hooked = [c for c in run.main if c.running and (c.spec.get("lifecycle") or {}).get("preStop")]
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if not hooked:
            return False
        for c in run.containers:
            if c not in hooked:
                _kill(c, signal.SIGTERM)
        for c in hooked:
            task = loop.create_task(self._pre_stop(run, c, grace))
            self.hooks.add(task)
            task.add_done_callback(self.hooks.discard)
        return True

    async def _pre_stop(self, run: PodRun, c: Container, grace: float) -> None:
        hook = c.spec["lifecycle"]["preStop"]
        try:
            if "sleep" in hook:
                await asyncio.sleep(min(float((hook["sleep"] or {}).get("seconds", 0)), grace))
            else:
                await self.check(run, c, {**hook, "timeoutSeconds": grace})
        finally:
            _kill(c, signal.SIGTERM)
