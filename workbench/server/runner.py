"""Service calls off the event loop.

Every service call may touch SQLite or the Kubernetes API, so none runs on the event loop.
A SQLite connection must stay in the thread that opened it, so each worker thread of the
pool owns a :class:`~workbench.service.Service` of its own, and a log stream runs in a
thread of its own with its own service for as long as it streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from ..config import Settings, load_settings

if TYPE_CHECKING:
    from ..service import Service

T = TypeVar("T")


class ServiceRunner:
    """Runs functions of a service in a thread pool, one service per worker thread.

    Args:
        service_class: the service to build, called with the settings.
        max_workers: how many service calls may run at once.
    """

    def __init__(self, service_class: type[Service], *, max_workers: int = 8) -> None:
        self.service_class = service_class
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="workbench-api")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._settings: Settings | None = None

    def settings(self) -> Settings:
        """The settings, read once (blocking: the config file); a bad config raises SpecError."""
        with self._lock:
            if self._settings is None:
                self._settings = load_settings()
            return self._settings

    def new_service(self) -> Service:
        """A service for the calling thread alone."""
        return self.service_class(self.settings())

    def _thread_service(self) -> Service:
        service: Service | None = getattr(self._local, "service", None)
        if service is None:
            service = self._local.service = self.new_service()
        return service

    async def call(self, fn: Callable[[Service], T]) -> T:
        """``fn(service)`` in a worker thread, with that thread's service."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._thread_service()))

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` in a worker thread (blocking work that needs no service)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class _Ready:
    """The first item of a log stream: the workload exists and its output can be read."""


class LogStream:
    """A workload's output, read in a thread of its own and handed to the event loop.

    The reader waits while ``window`` chunks are queued and unsent, so a slow client does
    not make the server buffer a whole log. :meth:`stop` ends the reader at its next chunk
    (the service's follow generator gives no earlier chance).

    Args:
        runner: where the service comes from.
        name: the workload.
        follow: keep reading until the workload ends.
        window: most chunks queued at once.
    """

    def __init__(self, runner: ServiceRunner, name: str, *, follow: bool, window: int = 16) -> None:
        self._runner = runner
        self._name = name
        self._follow = follow
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[str | _Ready | BaseException | None] = asyncio.Queue()
        self._room = threading.Semaphore(window)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._read, name=f"workbench-logs-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    async def opened(self) -> None:
        """Wait until the reader started; raise what the service raised (e.g. NotFound)."""
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        if not isinstance(item, _Ready):  # pragma: no cover - the reader always starts with _Ready
            raise RuntimeError("log stream out of order")

    async def next(self) -> str | None:
        """The next chunk; None at the end (or after :meth:`stop`)."""
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, _Ready):  # pragma: no cover
            raise RuntimeError("log stream out of order")
        if item is not None:
            self._room.release()
        return item

    def stop(self) -> None:
        """Tell the reader to stop and wake whoever waits on :meth:`next`."""
        if not self._stopped.is_set():
            self._stopped.set()
            self._queue.put_nowait(None)

    def _put(self, item: str | _Ready | BaseException | None) -> bool:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self._stopped.set()
            return False
        return True

    def _read(self) -> None:
        service: Service | None = None
        chunks = None
        try:
            service = self._runner.new_service()
            chunks = service.logs(self._name, follow=self._follow)
            if not self._put(_Ready()):
                return
            for chunk in chunks:
                while not self._room.acquire(timeout=0.5):
                    if self._stopped.is_set():
                        return
                if self._stopped.is_set() or not self._put(chunk):
                    return
            self._put(None)
        except Exception as exc:
            self._put(exc)
        finally:
            if isinstance(chunks, Generator):
                with contextlib.suppress(Exception):
                    chunks.close()
            if service is not None:
                service.close()
