"""Builders and waits for tests of Deployments and Services on the emulator.

``web(name)`` is a Deployment of a tiny HTTP server (``SERVER``) bound to the pod's IP
(``$POD_IP`` from the downward API) on port 8080 — named ``http`` — with a readiness probe on
``/healthz``; ``service(name)`` the ClusterIP Service in front of it (port 80 named http);
``proxy(emulator, path)`` calls the API server's service proxy. Use them with the
``fast_probes`` fixture (fixtures.py), which makes the emulator's probes ten times faster.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import kubernetes

from .emulator import Emulator
from .helpers import PY

#: answers GET with "<VERSION> <pod name> <path>", POST with its body; /healthz fails while env SICK is set
SERVER = r"""
import http.server, os
class Handler(http.server.BaseHTTPRequestHandler):
    def reply(self, code, body, kind="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path == "/healthz":
            return self.reply(500 if os.environ.get("SICK") else 200, b"ok")
        self.reply(200, f"{os.environ['VERSION']} {os.environ['HOSTNAME']} {self.path}".encode())
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.reply(201, body, self.headers["Content-Type"])
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((os.environ["POD_IP"], 8080), Handler).serve_forever()
"""


def web(name: str, version: str = "v1", replicas: int = 2, **spec: Any) -> dict[str, Any]:
    """A Deployment of the HTTP server above with a readiness probe on /healthz."""
    container = {
        "name": "main",
        "image": "python:3.11",
        "command": [PY, "-c", SERVER],
        "ports": [{"name": "http", "containerPort": 8080}],
        "env": [
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "VERSION", "value": version},
        ],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
    }
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
            **spec,
        },
    }


def service(name: str) -> dict[str, Any]:
    port = {"name": "http", "port": 80, "targetPort": "http"}
    return {"metadata": {"name": name}, "spec": {"selector": {"app": name}, "ports": [port]}}


def condition(d: Any, type_: str) -> Any:
    """The Deployment's (client model) condition of that type, or None."""
    return next((c for c in d.status.conditions or [] if c.type == type_), None)


def rolled_out(apps: kubernetes.client.AppsV1Api, name: str, revision: str | None = None) -> bool:
    """The Deployment's rollout is complete (at ``revision``), as ``kubectl rollout status`` judges."""
    d = apps.read_namespaced_deployment(name, "default")
    s, want = d.status, d.spec.replicas
    progressing = condition(d, "Progressing")
    return bool(
        s.observed_generation == d.metadata.generation
        and (s.updated_replicas or 0) == (s.replicas or 0) == (s.available_replicas or 0) == want
        and progressing is not None
        and progressing.reason == "NewReplicaSetAvailable"
        and (revision is None or d.metadata.annotations.get("deployment.kubernetes.io/revision") == revision)
    )


def proxy(emu: Emulator, path: str, body: bytes | None = None) -> tuple[int, str]:
    """(status, body text) of a GET (a POST with ``body``) of ``path`` on the emulator."""
    request = urllib.request.Request(emu.url + path, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def ready_ips(core: kubernetes.client.CoreV1Api, name: str) -> list[str]:
    """The ready addresses of the Service's Endpoints, sorted."""
    subsets = core.read_namespaced_endpoints(name, "default").subsets or []
    return sorted(a.ip for s in subsets for a in s.addresses or [])


def replica_sets(apps: kubernetes.client.AppsV1Api, name: str) -> dict[str, Any]:
    """revision → ReplicaSet of the Deployment."""
    found = apps.list_namespaced_replica_set("default", label_selector=f"app={name}").items
    return {rs.metadata.annotations["deployment.kubernetes.io/revision"]: rs for rs in found}
