"""pods/log: the container's output as text/plain, optionally followed until the process ends."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from .errors import bad_request
from .store import Obj

if TYPE_CHECKING:
    from .kubelet import Container, Kubelet

_WAITING_TEXT = {
    "ImagePullBackOff": "trying and failing to pull image",
    "ErrImagePull": "trying and failing to pull image",
}


def _tail(data: bytes, lines: int | None, limit: int | None) -> bytes:
    if lines is not None:
        parts = data.splitlines(keepends=True)
        data = b"".join(parts[-lines:]) if lines > 0 else b""
    if limit is not None:
        data = data[:limit]
    return data


def _pick(kubelet: Kubelet, pod: Obj, query: dict[str, str]) -> tuple[Container, Path]:
    spec, name = pod.get("spec") or {}, pod["metadata"]["name"]
    main = [c["name"] for c in spec.get("containers") or []]
    init = [c["name"] for c in spec.get("initContainers") or []]
    wanted = query.get("container")
    if not wanted:
        if len(main) != 1:
            extra = f" or one of the init containers: [{' '.join(init)}]" if init else ""
            raise bad_request(
                f"a container name must be specified for pod {name}, choose one of: [{' '.join(main)}]{extra}"
            )
        wanted = main[0]
    if wanted not in main and wanted not in init:
        raise bad_request(f"container {wanted} is not valid for pod {name}")
    run = kubelet.runs.get(pod["metadata"]["uid"])
    container = next((c for c in run.containers if c.name == wanted), None) if run else None
    if container is None or not container.logs:
        reason = container.waiting[0] if container else "ContainerCreating"
        if run is not None and run.prepared:
            reason = "PodInitializing" if wanted in main and init else "ContainerCreating"
        text = _WAITING_TEXT.get(reason, reason)
        raise bad_request(f'container "{wanted}" in pod "{name}" is waiting to start: {text}')
    if query.get("previous") in ("true", "True", "1"):
        if len(container.logs) < 2:
            raise bad_request(f'previous terminated container "{wanted}" in pod "{name}" not found')
        return container, container.logs[-2]
    return container, container.logs[-1]


async def serve_log(
    kubelet: Kubelet, request: web.Request, pod: Obj, query: dict[str, str]
) -> web.StreamResponse:
    container, path = _pick(kubelet, pod, query)
    tail = int(query["tailLines"]) if query.get("tailLines") else None
    limit = int(query["limitBytes"]) if query.get("limitBytes") else None
    data = path.read_bytes() if path.exists() else b""
    if query.get("follow") not in ("true", "True", "1"):
        return web.Response(body=_tail(data, tail, limit), content_type="text/plain", charset="utf-8")
    response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    index = container.logs.index(path)
    offset = len(data)
    sent = 0
    try:
        chunk = _tail(data, tail, limit)
        while True:
            if chunk:
                if limit is not None:
                    chunk = chunk[: max(0, limit - sent)]
                sent += len(chunk)
                await response.write(chunk)
            if (limit is not None and sent >= limit) or kubelet.em.closing:
                break
            finished = (
                not container.running or len(container.logs) > index + 1 or container.logs[index] != path
            )
            try:
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    chunk = handle.read()
            except FileNotFoundError:  # the pod was deleted and its directory removed
                break
            offset += len(chunk)
            if not chunk and finished:
                break
            if not chunk:
                await asyncio.sleep(0.02)
    except ConnectionError:
        pass
    return response
