"""``workbench.log_metric``: record a metric from inside a notebook run (or any workload).

Each call appends one JSON line ``{"name", "value", "step", "time"}`` to ``metrics.jsonl`` in
``WORKBENCH_OUTPUT_DIR`` (else ``WORKBENCH_RUN_DIR``, else the working directory). The
notebook runner puts the last value of each metric into the run's provenance manifest, and
sweeps show them in their summary table. Standard library only: cheap to import in a kernel.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


def metrics_path() -> Path:
    """Where this process's metrics go."""
    folder = os.environ.get("WORKBENCH_OUTPUT_DIR") or os.environ.get("WORKBENCH_RUN_DIR") or "."
    return Path(folder) / METRICS_FILE


def log_metric(name: str, value: Any, step: int | None = None) -> None:
    """Record ``value`` (a number, or anything JSON can hold) under ``name``.

    Raises:
        ValueError: ``name`` is empty, or a number is NaN or infinite (not JSON).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"metric name {name!r} must be a non-empty string")
    if hasattr(value, "item"):  # numpy and torch scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"metric {name!r}: {value} is not a finite number")
    line = json.dumps({"name": name, "value": value, "step": step, "time": time.time()})
    path = metrics_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
