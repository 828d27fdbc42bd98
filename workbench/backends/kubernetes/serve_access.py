"""Reaching an endpoint from outside the cluster, and reading its replicas' output.

:func:`proxy_request` sends one HTTP request through the API server's service proxy
(``/api/v1/namespaces/NS/services/NAME:PORT/proxy/PATH``) with the credentials and the
transport the ``kubernetes`` client configured, and gives back the endpoint's status and raw
body, whatever they are; only the API server's own refusals (no permission, no such Service)
become errors. :func:`endpoint_logs` prints every replica's output, each line prefixed
``[r<revision>.<i>]`` as the local router does; with ``follow`` it streams them all at once,
picking up replicas as they start, until the endpoint ends.
"""

from __future__ import annotations

import codecs
import json
import queue
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import urllib3

from ...errors import BackendUnavailable, NotFound, PermissionDenied, WorkbenchError
from ...store import Workload
from .logs import take_waiting
from .serve_manifests import KSERVE_CONTAINER, TRACK_LABEL
from .serve_revision import REVISION_ANNOTATION, canary_name
from .serve_state import proxy_path
from .serve_status import meta, notes_of, replica_sets_of, revision_number

if TYPE_CHECKING:
    from .serve import ServeEndpoints


def _api_refusal(status: int, data: bytes, what: str, namespace: str) -> WorkbenchError | None:
    """The API server's own answer (a v1 Status) when it refused to proxy, else None."""
    if status not in (401, 403, 404):
        return None
    try:
        body = json.loads(data)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("kind") != "Status":
        return None
    message = str(body.get("message") or body.get("reason") or status)
    if status in (401, 403):
        return PermissionDenied(
            f"not allowed to reach {what} through the API server: {message}",
            value=f"services/proxy {what}",
            hint=f"ask an admin to apply `workbench rbac --namespace {namespace}`",
        )
    if (body.get("details") or {}).get("kind") == "services":
        return NotFound(
            f"the Service of {what} is gone: {message}", value=what, hint="`workbench ls` lists them"
        )
    return None


def proxy_request(
    client: Any, service: str, port: str, method: str, path: str, body: bytes | None, timeout: float
) -> tuple[int, bytes]:
    """One request to ``service``'s ``port`` through the API server: the status and raw body.

    Raises:
        PermissionDenied: the API server refused (RBAC on ``services/proxy``).
        NotFound: the Service is gone.
        BackendUnavailable: the API server cannot be reached (after the client's retries).
    """
    api = client.api
    resource_path = f"{proxy_path(client.namespace, service, port)}/{path.lstrip('/')}"
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    attempts, last = max(1, client.settings.retries + 1), ""
    for attempt in range(attempts):
        if attempt:
            time.sleep(min(2.0, client.settings.retry_backoff * 2 ** (attempt - 1)))
        verb, url, sent_headers, _, _ = api.param_serialize(
            method.upper(), resource_path, header_params=headers, auth_settings=["BearerToken"]
        )
        try:
            response = api.rest_client.pool_manager.request(
                verb,
                url,
                body=body,
                headers=sent_headers,
                timeout=urllib3.Timeout(total=timeout),
                retries=False,
                preload_content=True,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            last = f"{type(exc).__name__}: {exc}"
            continue
        refusal = _api_refusal(response.status, response.data, service, client.namespace)
        if refusal is not None:
            raise refusal
        return int(response.status), bytes(response.data)
    raise BackendUnavailable(
        f"the Kubernetes API server did not answer a request for endpoint {service} ({last})",
        value=api.configuration.host,
        hint="check the cluster with `workbench doctor`, then try again",
    )


# -- logs ------------------------------------------------------------------------------------------------
def _started(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Running", "Succeeded", "Failed")


def pod_labels(
    endpoints: ServeEndpoints, workload: Workload, pods: Sequence[Mapping[str, Any]]
) -> dict[str, str]:
    """``r<revision>.<i>`` for each pod (by name): its ReplicaSet's revision, its place among them."""
    revisions: dict[str, int] = {}
    canary_revision = 0
    if not endpoints.is_kserve(workload):
        found = endpoints.deployments(workload.id, fresh=False)
        owned = replica_sets_of(found.get(workload.id), endpoints.replica_sets(workload.id, fresh=False))
        revisions = {
            str((meta(rs).get("labels") or {}).get("pod-template-hash")): revision_number(rs) for rs in owned
        }
        canary = found.get(canary_name(workload.id))
        canary_revision = int(notes_of(canary).get(REVISION_ANNOTATION, 0)) if canary else 0
    labels: dict[str, str] = {}
    seen: dict[int, int] = {}
    ordered = sorted(
        pods, key=lambda p: (str(meta(p).get("creationTimestamp", "")), str(meta(p).get("name")))
    )
    for pod in ordered:
        pod_meta = meta(pod).get("labels") or {}
        if pod_meta.get(TRACK_LABEL) == "canary":
            revision = canary_revision
        else:
            revision = revisions.get(str(pod_meta.get("pod-template-hash")), 0)
        seen[revision] = seen.get(revision, -1) + 1
        labels[str(meta(pod).get("name"))] = f"r{revision or '?'}.{seen[revision]}"
    return labels


def _prefixed(text: str, label: str) -> str:
    return "".join(f"[{label}] {line}\n" for line in text.splitlines())


def endpoint_logs(endpoints: ServeEndpoints, workload: Workload, *, follow: bool) -> Iterator[str]:
    client, backend = endpoints.client, endpoints.backend
    container = KSERVE_CONTAINER if endpoints.is_kserve(workload) else "main"
    if not follow:
        pods = backend.pods(workload.id)
        labels = pod_labels(endpoints, workload, pods)
        for pod in pods:
            if _started(pod):
                name = pod["metadata"]["name"]
                text = b"".join(client.logs(name, container=container)).decode("utf-8", "replace")
                yield _prefixed(text, labels[name])
        return
    lines: queue.Queue[str | None] = queue.Queue()

    def pump(name: str, label: str) -> None:
        decoder, pending = codecs.getincrementaldecoder("utf-8")("replace"), ""
        try:
            for chunk in client.logs(name, container=container, follow=True):
                pending += decoder.decode(chunk)
                done, _, pending = pending.rpartition("\n")
                if done:
                    lines.put(_prefixed(done, label))
        except WorkbenchError:
            pass
        finally:
            if pending.strip():
                lines.put(_prefixed(pending, label))
            lines.put(None)

    streamed: set[str] = set()
    open_streams = 0
    if not endpoints.is_kserve(workload):
        endpoints.tracker.watch()
    backend.tracker.watch()
    while True:
        record = backend.refresh(endpoints.store.get(workload.id))
        pods = backend.pods(workload.id)
        labels = pod_labels(endpoints, workload, pods)
        for pod in pods:
            name = pod["metadata"]["name"]
            if name not in streamed and _started(pod):
                streamed.add(name)
                open_streams += 1
                threading.Thread(
                    target=pump, args=(name, labels[name]), name=f"workbench-log-{name}", daemon=True
                ).start()
        try:
            item = lines.get(timeout=0.5)
        except queue.Empty:
            if record.done and open_streams == 0:
                return
            continue
        items, ended = take_waiting(lines, item)
        open_streams -= ended
        yield from items
