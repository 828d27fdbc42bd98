"""Replica processes of a local endpoint: start, readiness probe, log relay, stop.

A replica is ``python -m workbench.runtime.serve_replica REVISION_DIR --host 127.0.0.1 --port P``
(the module can be swapped through ``WORKBENCH_SERVE_REPLICA_MODULE``, which the tests use),
started in a session of its own so the router decides when it stops: new requests are withheld
first, in-flight ones finish, then SIGTERM to its group, SIGKILL after a grace. Every line it
prints goes to the router's stdout prefixed ``[r<rev>.<i>] ``; its last stderr line is kept as
the reason when it dies.

This module imports only the standard library (aiohttp where a probe runs), so the router can
start the first replicas before it imports its server and client: the two start together.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aiohttp

REPLICA_MODULE_ENV = "WORKBENCH_SERVE_REPLICA_MODULE"
DEFAULT_REPLICA_MODULE = "workbench.runtime.serve_replica"
DESIRED = "desired.json"
#: Seconds between readiness probes while a replica starts (it sets the time to first answer).
PROBE_EVERY = 0.02
#: Seconds from SIGTERM to SIGKILL for a replica.
STOP_GRACE = 5.0


def say(text: str) -> None:
    """One line of the router's own to its stdout (the workload's log)."""
    _write(f"[router] {text}\n".encode())


def _write(data: bytes) -> None:
    with contextlib.suppress(OSError):
        os.write(1, data)


def load_desired(run_dir: Path) -> dict[str, Any]:
    """``RUN_DIR/desired.json``; OSError or ValueError when it is missing or malformed."""
    desired = json.loads((run_dir / DESIRED).read_text())
    if not isinstance(desired, dict) or not isinstance(desired.get("revisions"), list):
        raise ValueError("no list of revisions")
    for item in desired["revisions"]:
        int(item["revision"])
        int(item.get("traffic", 0))
    return desired


def read_meta(payload: Path) -> dict[str, Any]:
    """A revision's meta.json; empty when it is missing or unreadable."""
    try:
        meta = json.loads((payload / "meta.json").read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


_recent_ports: list[int] = []


def free_port() -> int:
    """A free TCP port on 127.0.0.1, not one handed out lately."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _recent_ports:
            break
    _recent_ports.append(port)
    del _recent_ports[:-64]
    return port


@dataclass(eq=False)
class Replica:
    """One replica as the proxy sees it (routable while it is in its revision's ready list)."""

    revision: int
    name: str  # "r2.0", as in the log prefixes
    port: int
    inflight: int = 0
    base: str = field(init=False)
    header: bytes = field(init=False)

    def __post_init__(self) -> None:
        self.base = f"http://127.0.0.1:{self.port}"
        self.header = str(self.revision).encode()


@dataclass(eq=False)
class ReplicaProcess:
    """One replica process and what the controller knows of it."""

    revision: int
    index: int
    port: int
    proxy: Replica = field(init=False)
    proc: subprocess.Popen[bytes] | None = None
    ready: bool = False
    stopping: bool = False
    exited: bool = False
    code: int | None = None
    last_error: str = ""
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.proxy = Replica(self.revision, self.name, self.port)

    @property
    def name(self) -> str:
        return f"r{self.revision}.{self.index}"

    def reason(self) -> str:
        """Why it ended, in one line."""
        if self.last_error:
            return self.last_error
        if self.code is not None and self.code < 0:
            return f"replica {self.name} was killed by signal {-self.code}"
        return f"replica {self.name} exited with code {self.code}"

    def spawn(self, payload: Path, env: dict[str, str]) -> None:
        """Start the process (no event loop needed); :meth:`attach` follows it afterwards."""
        module = os.environ.get(REPLICA_MODULE_ENV) or DEFAULT_REPLICA_MODULE
        argv = [sys.executable, "-m", module, str(payload), "--host", "127.0.0.1", "--port", str(self.port)]
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**os.environ, **env},
                start_new_session=True,  # a process group of its own: signals reach what it starts
            )
        except OSError as exc:
            self.last_error = f"could not start {module}: {exc}"

    async def attach(self, on_exit: Callable[[ReplicaProcess], None]) -> None:
        """Relay its output and call ``on_exit`` when it ends (the pipes drained first)."""
        if self.proc is None:
            self.exited = True
            on_exit(self)
            return
        assert self.proc.stdout is not None and self.proc.stderr is not None
        prefix = f"[{self.name}] ".encode()
        pumps = [
            asyncio.ensure_future(self._pump(self.proc.stdout, prefix, keep=False)),
            asyncio.ensure_future(self._pump(self.proc.stderr, prefix, keep=True)),
        ]
        self.code = await _wait_exit(self.proc)
        with contextlib.suppress(TimeoutError):  # its children may hold the pipes open
            await asyncio.wait_for(asyncio.gather(*pumps, return_exceptions=True), 1.0)
        self.exited = True
        self.ready = False
        on_exit(self)

    async def _pump(self, pipe: IO[bytes], prefix: bytes, keep: bool) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**20)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # a line longer than the reader's limit: pass a piece on
                    line = await reader.read(2**16)
                if not line:
                    return
                if not line.endswith(b"\n"):
                    line += b"\n"
                _write(prefix + line)
                if keep and line.strip():
                    self.last_error = line.decode("utf-8", "replace").strip()[:300]
        finally:
            transport.close()

    async def wait_ready(
        self, session: aiohttp.ClientSession, model_name: str, deadline: float
    ) -> str | None:
        """Poll ``/v2/models/{name}/ready`` until 200; None when ready, else why not."""
        import aiohttp

        url = f"http://127.0.0.1:{self.port}/v2/models/{model_name}/ready"
        while not self.exited and not self.stopping:
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        self.ready = True
                        return None
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
            if time.monotonic() >= deadline:
                return f"replica {self.name} was not ready within {deadline - self.started:.0f}s"
            await asyncio.sleep(PROBE_EVERY if time.monotonic() - self.started < 30 else 0.25)
        return self.reason() if self.exited else "stopped"

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM to its group, SIGKILL after ``grace`` seconds; returns when it is gone."""
        self.stopping = True
        self.ready = False
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            _signal(proc.pid, signal.SIGTERM)
            limit = time.monotonic() + grace
            while proc.poll() is None and time.monotonic() < limit:
                await asyncio.sleep(0.02)
            if proc.poll() is None:
                _signal(proc.pid, signal.SIGKILL)
                while proc.poll() is None:
                    await asyncio.sleep(0.02)
        _signal(proc.pid, signal.SIGKILL)  # whatever it left in its group


async def _wait_exit(proc: subprocess.Popen[bytes]) -> int:
    """The exit code, awaited through a pidfd (polled where there is none)."""
    loop = asyncio.get_running_loop()
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        while proc.poll() is None:
            await asyncio.sleep(0.1)
        return proc.returncode
    ended: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ended.done():
            ended.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await ended
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return proc.wait()


def _signal(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def prestart(run_dir: Path, desired: dict[str, Any]) -> dict[int, list[ReplicaProcess]]:
    """Start the replicas of the desired revisions at once (before the router's heavy imports)."""
    replicas = max(1, int(desired.get("replicas") or 1))
    if desired.get("autoscale"):
        low, high = (int(n) for n in desired["autoscale"])
        replicas = min(max(replicas, low), high)
    started: dict[int, list[ReplicaProcess]] = {}
    for item in desired["revisions"]:
        number = int(item["revision"])
        payload = run_dir / str(item.get("payload") or f"revisions/{number}")
        meta = read_meta(payload)
        if not meta:
            continue
        env = {str(k): str(v) for k, v in (meta.get("env") or {}).items()}
        started[number] = []
        for index in range(replicas):
            process = ReplicaProcess(number, index, free_port())
            process.spawn(payload, env)
            started[number].append(process)
    return started
