"""The workbench agent: one warm process per user that runs kernels' ``%%pod`` and ``%%train``.

``python -m workbench.agent SOCKET IDLE`` (started by :mod:`workbench.agent_client` when a
kernel finds none) imports pydantic, pydantic-settings, the spec models, the service and the
local backend once, then listens on its socket (:func:`workbench.runtime.daemons.serve`: this
user only, 0600 in a 0700 folder, gone after ``IDLE`` seconds without a request or once a
module of the package changed). Each kernel's connection is served by a fork that takes on the asking
kernel's context (environment, working directory, umask, limits, nice value, CPU affinity,
ignored signals: :func:`workbench.runtime.launcher.apply_context`), so its settings, store and
launch are those the kernel would have had, and then:

1. parses the magic's line and validates the spec (an error: its one line; ``--help``: the
   text), and hands anything not on the local backend back to the kernel (``fallback``);
2. asks the kernel for the ``--send`` values, pickled there (``send`` → ``pickled`` and the
   blob, or ``abort``);
3. launches, and sends the record (``launched``); with ``--detach`` that is all;
4. streams the logs (``out``), waits, checks the outcome (a failure's one line), and names
   the run and its results' key (``done``); the kernel unpickles, never the agent.

The fork stays with its kernel for the next cells (a request in another context gets
``again``: a new fork takes it on) and leaves when the kernel hangs up, even while it follows
a workload (which goes on), or after ``IDLE`` seconds without a cell. An interrupt comes as a
request of its own on a second connection (``op: cancel``), answered ``interrupted`` and the
status. What the fork prints itself (warnings, ``--help``) goes to the kernel too (``out``,
``err``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

from . import agent_client
from .runtime import daemons, launcher
from .runtime.daemons import Channel


class _Stream:
    """A text stream whose writes go to the kernel as messages of one key."""

    def __init__(self, link: _Link, key: str) -> None:
        self.link, self.key = link, key

    def write(self, text: str) -> int:
        if text:
            self.link.send({self.key: text})
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


class _Link(Channel):
    """The kernel's connection, written to by whichever thread of the fork prints."""

    def __init__(self, sock: Any) -> None:
        super().__init__(sock)
        self.lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        with self.lock:
            super().send(message)


def _preload() -> None:
    """Load once what every fork needs, and take the first calls' costs (validators built,
    lazy imports made) here, not in each fork; then freeze it all out of the collector's
    sight, so that a fork's collections do not write to (and copy) the agent's pages."""
    import gc

    import yaml  # noqa: F401 - read with a config file

    from . import options, service  # noqa: F401
    from .backends.base import backend_class
    from .config import load_settings
    from .errors import WorkbenchError
    from .spec import parse_spec

    backend_class("local")
    for kind in ("pod", "train"):
        options.cell_parser(kind)
        parse_spec({"kind": kind, "code": "pass", "send": ["x"], "get": ["y"]})
    with contextlib.suppress(WorkbenchError):
        load_settings()
    gc.collect()
    gc.freeze()


def _serve_one(conn: Any, own: str, idle: float) -> bool:
    """Fork a server for one kernel's request; False when this agent should leave (stale)."""
    conn.settimeout(10.0)
    link = _Link(conn)
    request = link.receive()
    if request.get("stamp") != own:  # the stamp names the interpreter too
        link.send({"fallback": "stale"})
        return False
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork() == 0:
        code = 1
        try:
            code = _child(link, request, idle)
        finally:
            os._exit(code)
    return True


def _child(link: _Link, request: dict[str, Any], idle: float) -> int:
    """Serve one kernel: its cells one after another on its connection, in its context."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    keep = link.sock.fileno()
    os.closerange(3, keep)  # the listener and its lock stay the agent's alone
    os.closerange(keep + 1, 1 << 16)
    launcher.apply_context(request)
    import tempfile

    tempfile.tempdir = None  # the kernel's TMPDIR
    link.sock.settimeout(None)
    applied = _context(request)
    out: TextIO = _Stream(link, "out")  # type: ignore[assignment]
    err: TextIO = _Stream(link, "err")  # type: ignore[assignment]
    sys.stdout, sys.stderr = out, err
    server = _Server(link)
    try:
        while True:
            if request.get("op") == "cancel":
                server.cancel(str(request["id"]))
                return 0
            server.cell(request)
            link.sock.settimeout(idle)  # an idle kernel's fork leaves, as the agent does
            try:
                request = link.receive()
            except TimeoutError:
                return 0  # the kernel's next cell takes a new fork
            link.sock.settimeout(None)
            if _context(request) != applied:  # a new context: a new fork takes it on
                link.send({"again": True})
                return 0
    except ConnectionError:
        return 0  # the kernel went away
    except BaseException:
        import traceback

        with contextlib.suppress(OSError):
            link.send({"bug": traceback.format_exc()})
        return 1


def _context(request: dict[str, Any]) -> dict[str, Any]:
    return {key: request.get(key) for key in launcher.CONTEXT_KEYS}


class _Server:
    """A kernel's cells, with one service kept between them (as the kernel would keep it)."""

    def __init__(self, link: _Link) -> None:
        self.link = link
        self._service: Any = None

    @property
    def service(self) -> Any:
        if self._service is None:
            from .service import Service

            self._service = Service()
        return self._service

    def cancel(self, workload_id: str) -> None:
        from .errors import WorkbenchError

        try:
            final = self.service.cancel(workload_id)
        except WorkbenchError as exc:
            self.link.send({"error": exc.one_line()})
            return
        self.link.send({"interrupted": final.id, "status": final.status})

    def cell(self, request: dict[str, Any]) -> None:
        from .errors import WorkbenchError
        from .options import HelpShown, cell_fields

        link = self.link
        try:
            raw, detach = cell_fields(str(request["kind"]), str(request["line"]), str(request["code"]))
            spec = self.service.resolve(raw)
        except HelpShown:
            link.send({"help": True})
            return
        except WorkbenchError as exc:
            link.send({"error": exc.one_line()})
            return
        if spec.backend != "local":
            link.send({"fallback": spec.backend})
            return
        link.send({"send": list(getattr(spec, "send", []) or [])})
        answer = link.receive()
        if "pickled" not in answer:  # the values could not be pickled, or an interrupt
            link.send({"stopped": True})
            return
        blob = link.receive_blob() if answer["pickled"] else None
        service = self.service
        try:
            workload = service.launch(
                spec, pickled=blob, session=request.get("session"), cwd=str(request["cwd"])
            )
        except WorkbenchError as exc:
            link.send({"error": exc.one_line()})
            return
        link.send({"launched": workload.to_dict()})
        if detach:
            link.send({"detached": True})
            return
        with _gone_ends_me(link):
            for chunk in service.logs(workload.id, follow=True):
                link.send({"out": chunk})
        final = service.wait(workload.id)
        try:
            key = service.results_key(service.check(final))
        except WorkbenchError as exc:
            link.send({"error": exc.one_line()})
            return
        done = {"done": final.id, "status": final.status, "run_dir": final.run_dir}
        link.send({**done, "key": key.hex() if key else None})


@contextlib.contextmanager
def _gone_ends_me(link: _Link) -> Iterator[None]:
    """While a workload is followed the kernel sends nothing here: its hang-up (the kernel went
    away, or an interrupt had it cancelled through another connection) ends this fork, and
    the workload goes on as it would have without the kernel."""
    import select

    wake_read, wake_write = os.pipe()

    def watch() -> None:
        poller = select.poll()
        poller.register(link.sock.fileno(), select.POLLRDHUP)
        poller.register(wake_read, select.POLLIN)
        for fd, _ in poller.poll():
            if fd != wake_read:
                os._exit(0)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        os.write(wake_write, b"x")
        thread.join()
        os.close(wake_read)
        os.close(wake_write)


def main(argv: list[str]) -> int:
    path, idle = argv[0], float(argv[1])
    if os.fork() > 0:  # detach: whoever started it reaps this parent at once
        os._exit(0)
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # its forks are nobody's to wait for
    own = agent_client.stamp()
    return daemons.serve(
        path, idle, lambda conn: _serve_one(conn, own, idle), lambda: agent_client.stamp() == own, _preload
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
