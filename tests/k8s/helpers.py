"""Small builders and waits shared by tests that drive the emulator."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import kubernetes
from kubernetes.client import ApiException

T = TypeVar("T")
PY = "python"  # the process kubelet runs the emulator's own interpreter for this


def wait_for(check: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def status_body(exc: ApiException) -> dict[str, Any]:
    """The Status object of a failed call."""
    return dict(json.loads(exc.body))


def job(name: str, code: str, **spec: Any) -> dict[str, Any]:
    """A batch/v1 Job of one ``python -c code`` container; ``pod=`` adds pod spec fields."""
    template_spec = spec.pop("pod", {})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            **spec,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "python:3.11", "command": [PY, "-c", code]}],
                    **template_spec,
                },
            },
        },
    }


def pod(name: str, command: list[str], labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    """A Pod with one container ``main``; ``container=`` adds container fields."""
    container = {"name": "main", "image": "python:3.11", "command": command, **spec.pop("container", {})}
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"restartPolicy": "Never", "containers": [container], **spec},
    }


def job_condition(batch: kubernetes.client.BatchV1Api, name: str, namespace: str = "default") -> str | None:
    """ "Complete" or "Failed" once the Job has finished, else None."""
    status = batch.read_namespaced_job(name, namespace).status
    for cond in status.conditions or []:
        if cond.type in ("Complete", "Failed") and cond.status == "True":
            return str(cond.type)
    return None


def job_pods(core: kubernetes.client.CoreV1Api, name: str, namespace: str = "default") -> list[Any]:
    return list(core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items)


def phase(core: kubernetes.client.CoreV1Api, name: str, namespace: str = "default") -> str:
    return str(core.read_namespaced_pod(name, namespace).status.phase)


def pid_gone(pid: int) -> bool:
    """The process no longer exists (reaped, not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
