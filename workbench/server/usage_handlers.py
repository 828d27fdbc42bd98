"""``GET workloads/NAME/usage?since=``: what a workload uses, over time.

The answer is :meth:`workbench.service.Service.usage`'s: ``{"summary": {...} | null,
"history": [{"t", "cpu_seconds", "cpu_percent", "rss_bytes", "threads", "gpu_util",
"gpu_memory_bytes"}, ...] (oldest first), "source": "psutil" | ... | null, "note": str | null}``.
With ``since`` (epoch seconds), only the samples taken after it: a page that follows a workload
asks for what is new since its last sample.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..errors import SpecError
from .base import WorkbenchHandler

if TYPE_CHECKING:
    from ..service import Service


def usage_since(service: Service, name: str, since: float | None) -> dict[str, Any]:
    usage = service.usage(name)
    if since is not None:
        usage["history"] = [sample for sample in usage["history"] if sample["t"] > since]
    return usage


class UsageHandler(WorkbenchHandler):
    """``GET workloads/NAME/usage?since=``."""

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        raw = self.get_query_argument("since", None)
        since = None
        if raw:
            try:
                since = float(raw)
            except ValueError:
                since = math.nan
            if not math.isfinite(since):
                raise SpecError(f"query argument since={raw!r} must be a time in epoch seconds", value=raw)
        self.reply(await self.call(lambda s: usage_since(s, name, since)))
