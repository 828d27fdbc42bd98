"""The emulator's request log and fault injection (a part of :class:`~tests.k8s.emulator.Emulator`)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass


@dataclass
class Fault:
    method: str | None
    path: re.Pattern[str]
    status: int | None
    times: int | None
    delay: float
    message: str | None


class RequestLog:
    """Every request served, and the faults injected into the next ones; thread-safe."""

    _lock: threading.Lock
    _requests: list[tuple[str, str, dict[str, str]]]
    _faults: list[Fault]

    def log_request(self, method: str, path: str, query: dict[str, str]) -> None:
        with self._lock:
            self._requests.append((method, path, query))

    @property
    def requests(self) -> list[tuple[str, str, dict[str, str]]]:
        """Every request served so far: (method, path, query)."""
        with self._lock:
            return list(self._requests)

    def reset_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """How many logged requests match ``method`` and the regex ``path`` (searched)."""
        return sum(
            1
            for m, p, _ in self.requests
            if (method is None or m == method.upper()) and (path is None or re.search(path, p))
        )

    def inject(
        self,
        method: str | None = None,
        path: str = ".*",
        status: int | None = 500,
        times: int | None = 1,
        delay: float = 0.0,
        message: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests (None: all) with ``status``.

        ``path`` is a regex searched in the URL path. With ``status=None`` the request is only
        delayed by ``delay`` seconds and then served normally.
        """
        with self._lock:
            self._faults.append(
                Fault(method.upper() if method else None, re.compile(path), status, times, delay, message)
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method in (None, method) and fault.path.search(path):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    return fault
        return None
