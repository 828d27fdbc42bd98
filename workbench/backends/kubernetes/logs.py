"""A pod workload's output, as the user should see it, and its sealed ``--get`` results.

The runner in the pod prints ``--get`` results as one final marked line sealed with the
launch's key (a pod's disk goes with it). :class:`MarkerFilter` takes that line out of what
users see (only when it verifies: a marked line the code printed itself stays visible) and
:func:`extract_results` reads it back. The key reaches the pod from a per-launch Secret
(:func:`with_results_key`).
"""

from __future__ import annotations

import base64
import queue
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ...private import private_dir, write_private
from ...runtime.results import KEY_ENV, find_in_log, load_from_log, seal_line
from ...runtime.results import MARKER as RESULTS_MARKER
from .hardening import pod_specs

_START = RESULTS_MARKER[0]


class MarkerFilter:
    """Removes the sealed results line from a stream of text chunks; holds back as little as possible.

    Args:
        key: the launch's results key; without one (no ``--get``) nothing is hidden.
    """

    def __init__(self, key: bytes | None = None) -> None:
        self._held = ""
        self._key = key

    def feed(self, text: str) -> str:
        """The part of ``text`` (with what was held back) that can be shown now."""
        text = self._held + text
        self._held = ""
        out: list[str] = []
        while text:
            start = text.find(_START)
            if start < 0:
                out.append(text)
                break
            out.append(text[:start])
            end = text.find("\n", start)
            if end < 0:
                self._held = text[start:]  # maybe the marker line, not complete yet
                break
            line = text[start:end]
            if not self._sealed(line):
                out.append(text[start : end + 1])
            text = text[end + 1 :]
        return "".join(out)

    def _sealed(self, line: str) -> bool:
        return self._key is not None and find_in_log(line, self._key) is not None

    def close(self) -> str:
        held, self._held = self._held, ""
        return "" if self._sealed(held) else held


def extract_results(log: str, key: bytes) -> dict[str, Any] | None:
    """The ``--get`` values sealed with ``key`` in a complete log, or None when it has none.

    Marked lines whose seal does not verify are passed over, never unpickled.
    """
    return load_from_log(log, key)


def sealed_results(cached: Path, logs: Iterable[str], key: bytes) -> dict[str, Any]:
    """The ``--get`` values sealed with ``key``: from ``cached`` (the sealed line kept once
    read, as the pods may be gone later), else from the first of ``logs`` that has them."""
    if cached.exists():
        values = extract_results(cached.read_text(), key)
        if values is not None:
            return values
    for log in logs:
        blob = find_in_log(log, key)
        if blob is not None:
            line = seal_line(blob, key)
            private_dir(cached.parent)
            write_private(cached, line)
            return extract_results(line, key) or {}
    return {}


def results_secret_name(workload_id: str) -> str:
    return f"{workload_id}-results"


def with_results_key(docs: list[dict[str, Any]], workload_id: str, key: str) -> list[dict[str, Any]]:
    """``docs`` with a Secret holding the launch's results key first, and every container that
    runs the cell runner given the key by reference (never in the pod spec itself)."""
    name = results_secret_name(workload_id)
    labels = dict(docs[-1]["metadata"].get("labels", {}))
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": labels},
        "type": "Opaque",
        "immutable": True,
        "data": {"key": base64.b64encode(key.encode()).decode()},
    }
    entry = {"name": KEY_ENV, "valueFrom": {"secretKeyRef": {"name": name, "key": "key"}}}
    for container in _containers(docs):
        if any(
            "workbench.runtime.cell" in str(word)
            for word in container.get("command", []) + container.get("args", [])
        ):
            container["env"] = sorted([*container.get("env", []), entry], key=lambda e: str(e["name"]))
    return [secret, *docs]


def _containers(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = [c for _, spec in pod_specs(docs) for c in spec["containers"] if isinstance(c, dict)]
    # a Kubeflow TrainJob's node container is its trainer block (command, args, env)
    return found + [doc["spec"]["trainer"] for doc in docs if doc.get("kind") == "TrainJob"]


def take_waiting(lines: queue.Queue[str | None], first: str | None) -> tuple[list[str], int]:
    """``first`` and every line already waiting in ``lines`` (pod streams put None when they
    end): the lines, and how many streams ended."""
    items: list[str] = []
    ended = 0
    item = first
    while True:
        if item is None:
            ended += 1
        else:
            items.append(item)
        try:
            item = lines.get_nowait()
        except queue.Empty:
            return items, ended
