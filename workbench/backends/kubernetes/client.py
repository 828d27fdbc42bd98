"""The only module that talks to the Kubernetes API server.

It uses the official ``kubernetes`` client for configuration (kubeconfig context or the
in-cluster service account), authentication and transport, and moves plain dicts: the
manifest builders make dicts and the backend reads dicts, so no typed model sits between.

Every answer the API server can give is mapped once, here:

- 403 → :class:`PermissionDenied` naming the verb and resource, with the ``workbench rbac`` hint;
- 404 on a custom resource's collection (create, list, watch) → :class:`BackendUnavailable`
  ("is the operator installed?");
- 404 on a named object → :class:`NotFound`, custom or not (without the operator it cannot
  exist); 409 → :class:`Conflict`; 422 → :class:`SpecError`, each with the server's message;
- 429, 5xx, timeouts and refused connections → bounded retries with backoff, then
  :class:`BackendUnavailable`.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException

from ...config import KubernetesConfig as KubernetesSettings
from ...errors import BackendUnavailable, Conflict, NotFound, PermissionDenied, SpecError, WorkbenchError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the API."""

    kind: str
    group: str
    version: str
    plural: str
    namespaced: bool = True
    custom: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base


RESOURCES: dict[str, Resource] = {
    r.kind: r
    for r in (
        Resource("ConfigMap", "", "v1", "configmaps"),
        Resource("Secret", "", "v1", "secrets"),
        Resource("Pod", "", "v1", "pods"),
        Resource("Service", "", "v1", "services"),
        Resource("Event", "", "v1", "events"),
        Resource("Node", "", "v1", "nodes", namespaced=False),
        Resource("Job", "batch", "v1", "jobs"),
        Resource("CronJob", "batch", "v1", "cronjobs"),
        Resource("NetworkPolicy", "networking.k8s.io", "v1", "networkpolicies"),
        Resource(
            "SelfSubjectAccessReview",
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
            namespaced=False,
        ),
        Resource(
            "CustomResourceDefinition",
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            namespaced=False,
        ),
    )
}


def register_resource(resource: Resource) -> None:
    """Teach the client a custom resource (Dask, Kubeflow, Kueue kinds)."""
    RESOURCES[resource.kind] = resource


def resource_for(kind: str) -> Resource:
    if kind not in RESOURCES:
        raise SpecError(f"workbench does not manage objects of kind {kind!r}", value=kind)
    return RESOURCES[kind]


class Expired(Exception):
    """A watch's resourceVersion is too old (410 Gone): list again."""


def _status_message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:300]
    return str(data.get("message") or data.get("reason") or data)


class KubeClient:
    """Plain-dict access to the API server through the official client.

    Args:
        settings: the kubernetes section of the workbench settings.
        api_client: an already configured client (tests, in-process servers); by default one
            is built from the in-cluster service account or the kubeconfig context.
    """

    def __init__(self, settings: KubernetesSettings, api_client: k8s.ApiClient | None = None) -> None:
        self.settings = settings
        self.api = api_client or self._configure(settings)
        self.namespace = settings.namespace or self._context_namespace or "default"

    _context_namespace: str | None = None

    def _configure(self, settings: KubernetesSettings) -> k8s.ApiClient:
        configuration = k8s.Configuration()
        try:
            if settings.in_cluster:
                k8s_config.load_incluster_config(client_configuration=configuration)
            else:
                k8s_config.load_kube_config(
                    config_file=settings.kubeconfig,
                    context=settings.context,
                    client_configuration=configuration,
                )
                _, active = k8s_config.list_kube_config_contexts(config_file=settings.kubeconfig)
                chosen = active
                if settings.context:
                    contexts, _ = k8s_config.list_kube_config_contexts(config_file=settings.kubeconfig)
                    chosen = next((c for c in contexts if c["name"] == settings.context), active)
                self._context_namespace = (chosen or {}).get("context", {}).get("namespace")
        except (ConfigException, OSError, TypeError, ValueError) as exc:
            raise BackendUnavailable(
                f"no Kubernetes cluster is configured: {exc}",
                value=settings.context,
                hint="set KUBECONFIG or kubernetes.context in the workbench config, or use --backend local",
            ) from None
        configuration.retries = False
        return k8s.ApiClient(configuration)

    # -- the one request function ----------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        resource: str,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        stream: bool = False,
        timeout: float | tuple[float, float] | None = None,
        custom: bool = False,
    ) -> Any:
        """Send one request, retrying transient failures; JSON back (or the raw stream)."""
        headers = {"Accept": "application/json" if not stream or verb == "watch" else "*/*"}
        if content_type:
            headers["Content-Type"] = content_type
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        attempts = max(1, self.settings.retries + 1)
        last = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(2.0, self.settings.retry_backoff * 2 ** (attempt - 1)))
            try:
                method_, url, hdrs, payload, post = self.api.param_serialize(
                    method,
                    path,
                    query_params=params,
                    header_params=headers,
                    body=body,
                    auth_settings=["BearerToken"],
                )
                response = self.api.call_api(
                    method_,
                    url,
                    hdrs,
                    payload,
                    post,
                    _request_timeout=timeout or self.settings.request_timeout,
                )
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            status = response.status
            if status in RETRY_STATUSES:
                last = f"HTTP {status}: {_status_message(response.read())}"
                continue
            if status == 410 and verb == "watch":
                raise Expired(_status_message(response.read()))
            if status >= 400:
                raise self._error(status, response.read(), verb=verb, resource=resource, custom=custom)
            if stream:
                return response.response
            data = response.read()
            return json.loads(data) if data else {}
        raise BackendUnavailable(
            f"the Kubernetes API server did not answer {verb} {resource} after {attempts} tries ({last})",
            value=self.api.configuration.host,
            hint="check the cluster with `workbench doctor`, then try again",
        )

    def _error(self, status: int, body: bytes, *, verb: str, resource: str, custom: bool) -> WorkbenchError:
        message = _status_message(body)
        where = f"in namespace {self.namespace!r}"
        if status == 401:
            return PermissionDenied(
                f"the API server did not accept our credentials: {message}",
                hint="refresh your kubeconfig credentials (log in to the cluster again)",
            )
        if status == 403:
            return PermissionDenied(
                f"not allowed to {verb} {resource} {where}: {message}",
                value=f"{verb} {resource}",
                hint=f"ask an admin to apply `workbench rbac --namespace {self.namespace}`",
            )
        if status == 404 and custom:
            return BackendUnavailable(
                f"the API server does not serve {resource}: is the operator that provides it installed?",
                value=resource,
                hint="`workbench doctor` lists which optional operators and CRDs were found",
            )
        if status == 404:
            return NotFound(message, value=resource, hint="`workbench ls` lists the workloads")
        if status == 409:
            return Conflict(message, value=resource, hint="choose another --name or remove the old one")
        if status == 410:
            return Conflict(message, value=resource)
        if status == 422 or status == 400:
            return SpecError(f"the API server rejected {resource}: {message}", value=resource)
        return BackendUnavailable(f"the API server answered {status} to {verb} {resource}: {message}")

    # -- objects ---------------------------------------------------------------------------
    def create(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        res = resource_for(doc["kind"])
        namespace = doc.get("metadata", {}).get("namespace") or self.namespace
        result: dict[str, Any] = self.request(
            "POST", res.path(namespace), verb="create", resource=res.plural, body=dict(doc), custom=res.custom
        )
        return result

    def create_all(self, docs: Sequence[Mapping[str, Any]]) -> builtins.list[dict[str, Any]]:
        """Create objects in order; if one fails, delete those already created, then raise."""
        created: builtins.list[dict[str, Any]] = []
        try:
            for doc in docs:
                created.append(self.create(doc))
        except BaseException:
            for obj in reversed(created):
                with contextlib.suppress(WorkbenchError):  # best effort: the first error is the one to report
                    self.delete(obj["kind"], obj["metadata"]["name"])
            raise
        return created

    def get(self, kind: str, name: str) -> dict[str, Any]:
        res = resource_for(kind)
        result: dict[str, Any] = self.request(
            "GET", res.path(self.namespace, name), verb="get", resource=res.plural
        )
        return result

    def patch(self, kind: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of a named object."""
        res = resource_for(kind)
        result: dict[str, Any] = self.request(
            "PATCH",
            res.path(self.namespace, name),
            verb="patch",
            resource=res.plural,
            body=dict(body),
            content_type="application/merge-patch+json",
        )
        return result

    def list(
        self, kind: str, *, selector: str | None = None, fields: str | None = None
    ) -> tuple[builtins.list[dict[str, Any]], str]:
        """Items and the list's resourceVersion (to start a watch from)."""
        res = resource_for(kind)
        data = self.request(
            "GET",
            res.path(self.namespace),
            verb="list",
            resource=res.plural,
            query={"labelSelector": selector, "fieldSelector": fields},
            custom=res.custom,
        )
        items: builtins.list[dict[str, Any]] = data.get("items") or []
        for item in items:  # lists leave kind/apiVersion off their items
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", res.api_version)
        return items, str(data.get("metadata", {}).get("resourceVersion", ""))

    def watch(
        self, kind: str, *, selector: str | None, resource_version: str, timeout: int = 60
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Events after ``resource_version`` until the server closes the watch.

        Raises:
            Expired: the version is too old (410); list again and watch from the new one.
        """
        res = resource_for(kind)
        query = {
            "watch": "true",
            "labelSelector": selector,
            "resourceVersion": resource_version,
            "timeoutSeconds": timeout,
            "allowWatchBookmarks": "true",
        }
        response = self.request(
            "GET",
            res.path(self.namespace),
            verb="watch",
            resource=res.plural,
            query=query,
            stream=True,
            timeout=(self.settings.request_timeout, timeout + 15),
            custom=res.custom,
        )
        try:
            buffer = b""
            for chunk in response.stream(4096, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        if obj.get("code") == 410:
                            raise Expired(obj.get("message", "resource version too old"))
                        raise BackendUnavailable(f"watch of {res.plural} failed: {obj.get('message', obj)}")
                    obj.setdefault("kind", kind)
                    obj.setdefault("apiVersion", res.api_version)
                    yield str(event.get("type")), obj
        except urllib3.exceptions.HTTPError:
            return  # the server or a proxy closed the stream: the caller watches again
        finally:
            response.release_conn()

    def delete(
        self, kind: str, name: str, *, missing_ok: bool = True, propagation: str = "Background"
    ) -> bool:
        """Delete an object (dependents in the background); False when it was already gone."""
        res = resource_for(kind)
        try:
            self.request(
                "DELETE",
                res.path(self.namespace, name),
                verb="delete",
                resource=res.plural,
                body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation},
            )
        except NotFound:
            if not missing_ok:
                raise
            return False
        return True

    def logs(self, pod: str, *, container: str = "main", follow: bool = False) -> Iterator[bytes]:
        """A container's output, in chunks; with ``follow`` until it ends."""
        path = RESOURCES["Pod"].path(self.namespace, pod, "log")
        response = self.request(
            "GET",
            path,
            verb="get",
            resource="pods/log",
            query={"container": container, "follow": "true" if follow else None},
            stream=True,
            timeout=(self.settings.request_timeout, None) if follow else self.settings.request_timeout,  # type: ignore[arg-type]
        )
        try:
            yield from response.stream(8192, decode_content=True)
        except urllib3.exceptions.HTTPError:
            return
        finally:
            response.release_conn()

    # -- cluster facts ---------------------------------------------------------------------
    def server_version(self) -> tuple[int, int]:
        data = self.request("GET", "/version", verb="get", resource="version")
        major = int("".join(c for c in str(data.get("major", "1")) if c.isdigit()) or 1)
        minor = int("".join(c for c in str(data.get("minor", "0")) if c.isdigit()) or 0)
        return major, minor

    def nodes(self) -> builtins.list[dict[str, Any]] | None:
        """The nodes, or None when we may not list them."""
        try:
            data = self.request("GET", RESOURCES["Node"].path(None), verb="list", resource="nodes")
        except PermissionDenied:
            return None
        items: builtins.list[dict[str, Any]] = data.get("items") or []
        return items

    def can_i(self, verb: str, group: str, resource: str, *, namespaced: bool = True) -> bool:
        """Ask the API server (SelfSubjectAccessReview) whether we may do ``verb`` on ``resource``."""
        plural, _, sub = resource.partition("/")
        attributes: dict[str, Any] = {"verb": verb, "group": group, "resource": plural}
        if sub:
            attributes["subresource"] = sub
        if namespaced:
            attributes["namespace"] = self.namespace
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        }
        data = self.request(
            "POST",
            RESOURCES["SelfSubjectAccessReview"].path(None),
            verb="create",
            resource="selfsubjectaccessreviews",
            body=review,
        )
        return bool(data.get("status", {}).get("allowed"))

    def crd_exists(self, name: str) -> bool:
        try:
            self.request(
                "GET",
                RESOURCES["CustomResourceDefinition"].path(None, name),
                verb="get",
                resource="customresourcedefinitions",
            )
        except (NotFound, PermissionDenied):
            return False
        return True
