"""A kernel's side of the workbench agent: ``%%pod`` and ``%%train`` without pydantic in the kernel.

The first ``%%pod`` of a kernel used to import pydantic, pydantic-settings and the spec models,
and open the store, before anything ran (about 180 ms here). The agent
(:mod:`workbench.agent`) is one long-lived process per user and installation that has all of
that imported; the kernel sends it the cell (its magic line, code, session and the kernel's
context: environment, working directory, umask, limits), and a fork of the agent, in that
context, does what the kernel did: parses the line, validates the spec, launches, follows the
logs and checks the outcome. The kernel keeps what only it can do:

- pickling the ``--send`` values (asked for by name once the spec is valid);
- printing the output as it streams in, and the launch's widget where widgets are wanted;
- loading the ``--get`` values: the agent names the run and its key; the kernel checks the
  seal and unpickles, as :meth:`~workbench.service.Service.results` does;
- an interrupt: it asks the agent to cancel, and reports the workload's status.

Nothing changes for the user: the same messages, output, records and errors. The kernel
uses the in-kernel path when the agent is absent (and starts one in the background for next
time), stale, off (``WORKBENCH_AGENT=0``), inside a local workload, or for another backend
than the local one; it asks before anything is created, so a fallback never launches twice.
A kernel that goes away while a cell follows its workload leaves the workload running.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

from .runtime import daemons, launcher, procs
from .runtime.daemons import Channel

#: Set to ``0``/``off``/``no``/``false`` to launch from the kernel itself.
SWITCH_ENV = "WORKBENCH_AGENT"
AGENT_MODULE = "workbench.agent"
#: Seconds without a request after which the agent exits.
IDLE_SECONDS = 600.0
_PACKAGE = os.path.dirname(os.path.abspath(__file__))


class AgentError(Exception):
    """What the cell failed with, as one line (the message the in-kernel path gives)."""


def enabled() -> bool:
    value = os.environ.get(SWITCH_ENV, "").strip().lower()
    return value not in ("0", "off", "no", "false") and procs.MARKER_ENV not in os.environ


def package_files() -> tuple[str, ...]:
    """Every module of the package (the agent has any of them loaded), relative to it."""
    found: list[str] = []
    for folder, dirs, files in os.walk(_PACKAGE):
        dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", "labextension"))
        rel = os.path.relpath(folder, _PACKAGE)
        found.extend(os.path.normpath(os.path.join(rel, f)) for f in sorted(files) if f.endswith(".py"))
    return tuple(found)


def stamp() -> str:
    """What the agent's code is: a change to any module of the package makes a new agent."""
    return launcher.stamp(package_files())


_known: list[str] = []  # this process's stamp, once known (its own modules are loaded already)


def socket_path(fresh: bool = False) -> Any:
    """Where this installation's agent listens (None: no usable folder); the stamp is taken
    again when ``fresh`` (its files are read once per process otherwise: ~2 ms)."""
    if fresh or not _known:
        _known[:] = [stamp()]
    return daemons.socket_path(f"agent-{_known[0]}.sock")


def spawn(path: Any) -> None:
    daemons.spawn(path, AGENT_MODULE, str(IDLE_SECONDS))


def run_cell(
    kind: str,
    line: str,
    code: str,
    *,
    user_ns: dict[str, Any],
    session: str | None,
    on_launch: Callable[[dict[str, Any]], None],
) -> bool:
    """Run ``%%kind line`` with ``code`` through the agent; False: nothing was done, use the
    in-kernel path.

    Raises:
        AgentError: the cell failed (bad flags, an invalid spec, a failed workload,
            results that do not verify), with the in-kernel path's one line.
        KeyboardInterrupt: never while the workload runs: an interrupt cancels it, and
            :class:`AgentError` says so.
    """
    if not enabled():
        return False
    path = socket_path()
    if path is None:
        return False
    try:
        request = {
            **launcher.context(),
            "stamp": _known[0],  # the interpreter's path and version included
            "kind": kind,
            "line": line,
            "code": code,
            "session": session,
        }
    except OSError:  # the working directory is gone: the in-kernel path says so
        return False
    if not _busy.acquire(blocking=False):  # another thread's cell has the connection
        return False
    try:
        return _exchange(path, request, user_ns, on_launch)
    except BaseException:
        _drop()  # whatever the fork was doing, the next cell starts afresh
        raise
    finally:
        _busy.release()


def _exchange(
    path: Any, request: dict[str, Any], user_ns: dict[str, Any], on_launch: Callable[[dict[str, Any]], None]
) -> bool:
    first, channel = None, None
    for _ in range(2):  # a kept connection may have ended (an interrupt, a new context)
        channel = _connection(path)
        if channel is None:
            return False
        try:
            channel.sock.settimeout(10.0)
            channel.send(request)
            first = channel.receive()
        except (OSError, ValueError):
            first = None  # nothing is created before the kernel answers with the inputs
        if first is not None and "again" not in first:
            break
        _drop()
    if first is None or channel is None or "fallback" in first:
        if first is not None and first.get("fallback") == "stale":
            _drop()
        return False
    return _Cell(channel, path, request, user_ns, on_launch).run(first)


_kept: list[Channel] = []  # this process's connection to its fork of the agent, between cells
_busy = threading.Lock()


def _connection(path: Any) -> Channel | None:
    """The kept connection, else a new one (None: no agent, and one is started for next time)."""
    if _kept:
        return _kept[0]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10.0)
    try:
        sock.connect(str(path))
    except OSError:  # absent, or dead (or the code changed since): start one for next time
        sock.close()
        spawn(socket_path(fresh=True))
        return None
    _kept.append(Channel(sock))
    return _kept[0]


def _drop() -> None:
    while _kept:
        _kept.pop().sock.close()


def _cancel(path: Any, request: dict[str, Any], workload_id: str) -> dict[str, Any]:
    """Cancel through a fork of its own (the kernel's connection is busy following)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30.0)
            sock.connect(str(path))
            channel = Channel(sock)
            channel.send({**request, "op": "cancel", "id": workload_id})
            return channel.receive()
    except (OSError, ValueError):  # no agent now: the kernel cancels it itself
        from .errors import WorkbenchError
        from .service import Service

        try:
            final = Service().cancel(workload_id)
        except WorkbenchError as exc:
            return {"error": exc.one_line()}
        return {"interrupted": final.id, "status": final.status}


class _Cell:
    """One cell's conversation with the kernel's fork of the agent, after its first answer."""

    def __init__(
        self,
        channel: Channel,
        path: Any,
        request: dict[str, Any],
        user_ns: dict[str, Any],
        on_launch: Callable[[dict[str, Any]], None],
    ) -> None:
        self.channel, self.path, self.request = channel, path, request
        self.user_ns, self.on_launch = user_ns, on_launch
        self.record: dict[str, Any] = {}  # the workload, once launched
        self.phase = ""  # "asked": the fork waits for the --send values; "sending": it reads them

    def run(self, message: dict[str, Any]) -> bool:
        try:
            while not self._step(message):
                message = self.channel.receive()
        except KeyboardInterrupt:
            self._interrupted()
        except (OSError, ValueError) as exc:
            name = self.record.get("id")
            where = f"`%wb logs {name}` follows {name}" if name else "`%wb ls` shows whether it started"
            raise AgentError(f"lost the workbench agent ({exc}) — {where}") from None
        return True

    def _interrupted(self) -> None:
        """After an interrupt: the workload is cancelled; raise what the in-kernel path raises
        (a plain KeyboardInterrupt when nothing was launched)."""
        channel = self.channel
        try:
            channel.sock.settimeout(30.0)
            if self.phase == "sending":  # dropping the connection cuts the values short
                raise KeyboardInterrupt
            if self.phase == "asked":  # it waits for the --send values: it stops
                channel.send({"abort": True})
            while "id" not in self.record:  # launching, or stopping: see which
                message = channel.receive()
                if "launched" in message:
                    self.record.update(message["launched"])
                elif "send" in message:  # the interrupt came before it asked
                    channel.send({"abort": True})
                elif "error" in message:
                    raise AgentError(message["error"])
                elif "out" not in message and "err" not in message:
                    raise KeyboardInterrupt
        except (OSError, ValueError):
            raise KeyboardInterrupt from None
        answer = _cancel(self.path, self.request, self.record["id"])
        if "error" in answer:
            raise AgentError(answer["error"])
        raise AgentError(f"interrupted; {answer['interrupted']} {answer['status']}")

    def _step(self, message: dict[str, Any]) -> bool:
        """Act on one message; True once the cell is over."""
        if "out" in message or "err" in message:
            stream = sys.stdout if "out" in message else sys.stderr
            stream.write(message.get("out") or message.get("err") or "")
            stream.flush()
            return False
        if "error" in message:
            raise AgentError(message["error"])
        if "bug" in message:
            raise RuntimeError(f"the workbench agent failed:\n{message['bug']}")
        if "send" in message:
            self._send(list(message["send"]))
            return False
        if "launched" in message:
            self.record.update(message["launched"])
            self.channel.sock.settimeout(None)  # a workload may run for days
            self.on_launch(self.record)
            return False
        if "detached" in message:
            print(f"{self.record['id']} launched; `%wb logs {self.record['id']}` to follow")
            return True
        if "done" in message:
            key = message.get("key")  # the workload succeeded; its results' key when it has --get
            if key:
                from .runtime.results import load_run

                values = load_run(message["done"], message["status"], message["run_dir"], bytes.fromhex(key))
                self.user_ns.update(values)
            return True
        return "help" in message

    def _send(self, names: list[str]) -> None:
        from .errors import WorkbenchError
        from .sending import pickled_inputs

        self.phase = "asked"
        try:
            blob = pickled_inputs(names, {n: self.user_ns[n] for n in names if n in self.user_ns})
        except WorkbenchError as exc:
            self.phase = ""
            self.channel.send({"abort": True})
            raise AgentError(exc.one_line()) from None
        self.phase = "sending"  # the fork reads them: cut short, it launches nothing
        self.channel.send({"pickled": blob is not None})
        if blob is not None:
            self.channel.send_blob(blob)
        self.phase = ""
