"""Replica processes of a local endpoint: start, readiness probe, log relay, stop.

A replica is ``python -m workbench.runtime.serve_replica REVISION_DIR --host 127.0.0.1 --port P``
(the module can be swapped through ``WORKBENCH_SERVE_REPLICA_MODULE``, which the tests use),
started in a process group of its own so the router decides when it stops: new requests are
withheld first, in-flight ones finish, then SIGTERM to its group, SIGKILL after a grace.
Every line it prints goes to the router's stdout prefixed ``[r<rev>.<i>] ``; the last stderr
line is kept as the reason when it dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from .serve_proxy import Replica

REPLICA_MODULE_ENV = "WORKBENCH_SERVE_REPLICA_MODULE"
DEFAULT_REPLICA_MODULE = "workbench.runtime.serve_replica"
#: Seconds between readiness probes while a replica starts (quick: it sets the launch time).
PROBE_EVERY = 0.05
#: Seconds from SIGTERM to SIGKILL for a replica.
STOP_GRACE = 5.0


def say(text: str) -> None:
    """One line of the router's own to its stdout (the workload's log)."""
    _write(f"[router] {text}\n".encode())


def _write(data: bytes) -> None:
    with contextlib.suppress(OSError):
        os.write(1, data)


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
class ReplicaProcess:
    """One replica process and what the controller knows of it."""

    revision: int
    index: int
    port: int
    proxy: Replica = field(init=False)
    proc: asyncio.subprocess.Process | None = None
    ready: bool = False
    stopping: bool = False
    exited: bool = False
    code: int | None = None
    last_error: str = ""
    started: float = field(default_factory=time.monotonic)
    _pumps: list[asyncio.Task[None]] = field(default_factory=list)

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

    async def start(
        self, payload: Path, env: dict[str, str], on_exit: Callable[[ReplicaProcess], None]
    ) -> None:
        module = os.environ.get(REPLICA_MODULE_ENV) or DEFAULT_REPLICA_MODULE
        argv = [sys.executable, "-m", module, str(payload), "--host", "127.0.0.1", "--port", str(self.port)]
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, **env},
                start_new_session=True,  # a group of its own (uvloop has no process_group)
                limit=2**20,
            )
        except (OSError, ValueError) as exc:
            self.exited, self.code, self.last_error = True, None, f"could not start {module}: {exc}"
            on_exit(self)
            return
        prefix = f"[{self.name}] ".encode()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._pumps = [
            asyncio.create_task(self._pump(self.proc.stdout, prefix, keep=False)),
            asyncio.create_task(self._pump(self.proc.stderr, prefix, keep=True)),
        ]
        asyncio.create_task(self._watch(on_exit))  # noqa: RUF006 - ends with the process

    async def _pump(self, stream: asyncio.StreamReader, prefix: bytes, keep: bool) -> None:
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line longer than the reader's limit: pass a piece on
                line = await stream.read(2**16)
            if not line:
                return
            if not line.endswith(b"\n"):
                line += b"\n"
            _write(prefix + line)
            if keep and line.strip():
                self.last_error = line.decode("utf-8", "replace").strip()[:300]

    async def _watch(self, on_exit: Callable[[ReplicaProcess], None]) -> None:
        assert self.proc is not None
        self.code = await self.proc.wait()
        with contextlib.suppress(asyncio.TimeoutError):  # its children may hold the pipes open
            await asyncio.wait_for(asyncio.gather(*self._pumps), 1.0)
        self.exited = True
        self.ready = False
        on_exit(self)

    async def wait_ready(
        self, session: aiohttp.ClientSession, model_name: str, deadline: float
    ) -> str | None:
        """Poll ``/v2/models/{name}/ready`` until 200; None when ready, else why not."""
        url = f"http://127.0.0.1:{self.port}/v2/models/{model_name}/ready"
        every = PROBE_EVERY
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
            await asyncio.sleep(every)
            every = min(every * 1.2, 0.5)
        return self.reason() if self.exited else "stopped"

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM to its group, SIGKILL after ``grace`` seconds; returns when it is gone."""
        self.stopping = True
        self.ready = False
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        _signal(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            _signal(proc.pid, signal.SIGKILL)
            await proc.wait()
        _signal(proc.pid, signal.SIGKILL)  # whatever it left in its group


def _signal(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def read_meta(payload: Path) -> dict[str, Any]:
    """A revision's meta.json; empty when it is missing or unreadable."""
    try:
        meta: dict[str, Any] = json.loads((payload / "meta.json").read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}
