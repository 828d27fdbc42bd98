"""A pod workload's output, as the user should see it.

The runner in the pod prints ``--get`` results as one final marked line (a pod's disk goes
with it); :class:`MarkerFilter` takes that line out of what users see and
:func:`extract_results` reads it back.
"""

from __future__ import annotations

import base64
import pickle
from typing import Any

from ...runtime.cell import RESULTS_MARKER

_START = RESULTS_MARKER[0]


class MarkerFilter:
    """Removes the results line from a stream of text chunks; holds back as little as possible."""

    def __init__(self) -> None:
        self._held = ""

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
            if not line.startswith(RESULTS_MARKER):
                out.append(text[start : end + 1])
            text = text[end + 1 :]
        return "".join(out)

    def close(self) -> str:
        held, self._held = self._held, ""
        return "" if held.startswith(RESULTS_MARKER[: len(held)]) or held.startswith(RESULTS_MARKER) else held


def extract_results(log: str) -> dict[str, Any] | None:
    """The ``--get`` values in a complete log, or None when it has none."""
    start = log.rfind(RESULTS_MARKER)
    if start < 0:
        return None
    end = log.find("\n", start)
    blob = base64.b64decode(log[start + len(RESULTS_MARKER) : end if end >= 0 else None])
    # the pod of a workload this user launched wrote it; cloudpickle payloads load with pickle
    data: dict[str, Any] = pickle.loads(blob)  # noqa: S301
    return data
