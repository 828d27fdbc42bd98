"""What the sidebar needs to know about the backends: which can run work, and on how many GPUs.

A probe may be slow (nvidia-smi, an API server that does not answer) or fail, so each runs
in a thread, is bounded by a timeout and is cached for a while; at most one probe of each
kind runs at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from .runner import ServiceRunner

Answer = dict[str, Any]


def probe(runner: ServiceRunner, name: str, timeout: float) -> Answer:
    """Ask the service what backend ``name`` can offer now (a service of this thread's own)."""
    service = runner.new_service()
    try:
        return service.probe(name, timeout)
    finally:
        service.close()


class CachedProbe:
    """One probe, run in a thread at most once at a time, its answer kept ``ttl`` seconds.

    Args:
        probe: the blocking probe.
        timeout: seconds a caller waits; after that it gets ``fallback(message)``, which is
            kept until the probe answers.
        ttl: seconds an answer is kept.
        fallback: the answer to give while the probe is still running.
    """

    def __init__(
        self,
        probe: Callable[[], Answer],
        *,
        timeout: float,
        ttl: float,
        fallback: Callable[[str], Answer],
    ) -> None:
        self._probe = probe
        self.timeout = timeout
        self.ttl = ttl
        self._fallback = fallback
        self._answer: Answer | None = None
        self._at = 0.0
        self._pending: asyncio.Future[Answer] | None = None

    async def get(self) -> Answer:
        if self._answer is not None and time.monotonic() - self._at < self.ttl:
            return self._answer
        if self._pending is None:
            self._pending = asyncio.ensure_future(asyncio.to_thread(self._probe))
            self._pending.add_done_callback(self._keep)
        try:
            return await asyncio.wait_for(asyncio.shield(self._pending), self.timeout)
        except TimeoutError:
            self._answer = self._fallback(f"no answer within {self.timeout:g}s")
            self._at = time.monotonic()
            return self._answer

    def _keep(self, future: asyncio.Future[Answer]) -> None:
        self._pending = None
        if not future.cancelled() and future.exception() is None:
            self._answer, self._at = future.result(), time.monotonic()
