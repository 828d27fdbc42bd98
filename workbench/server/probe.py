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

from ..config import Settings
from ..errors import WorkbenchError

Answer = dict[str, Any]


def probe_local(settings: Settings) -> Answer:
    from ..backends.local.gpus import detect_gpus

    gpus = list(settings.local_gpus) if settings.local_gpus is not None else detect_gpus()
    return {"available": True, "gpus": gpus}


def probe_kubernetes(settings: Settings, timeout: float) -> Answer:
    """Reach the API server once (no retries, ``timeout`` per request) and count GPUs on the nodes."""
    config = settings.kubernetes.model_copy(update={"retries": 0, "request_timeout": timeout})
    answer: Answer = {
        "available": False,
        "context": "in-cluster" if config.in_cluster else config.context,
        "namespace": config.namespace,
        "version": None,
        "gpus": None,
        "error": None,
    }
    try:
        from ..backends.kubernetes.client import KubeClient

        client = KubeClient(config)
        answer["namespace"] = client.namespace
        major, minor = client.server_version()
        nodes = client.nodes()
    except WorkbenchError as exc:
        answer["error"] = exc.one_line()
        return answer
    except ImportError as exc:
        answer["error"] = f"the kubernetes client is not installed ({exc})"
        return answer
    answer.update(available=True, version=f"{major}.{minor}")
    if nodes is not None:  # None: not allowed to list nodes
        resource = config.gpu_resource
        allocatable = (n.get("status", {}).get("allocatable", {}).get(resource, "0") for n in nodes)
        answer["gpus"] = sum(int(value or 0) for value in allocatable)
    return answer


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
