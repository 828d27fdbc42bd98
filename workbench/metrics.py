"""``workbench.log_metric``: record a metric from inside a notebook run (or any workload).

Each call appends one JSON line ``{"name", "value", "step", "time"}`` to ``metrics.jsonl`` in
``WORKBENCH_OUTPUT_DIR`` (else ``WORKBENCH_RUN_DIR``, else the working directory). The
notebook runner puts the last value of each metric into the run's provenance manifest, and
sweeps show them in their summary table. In a workload tracked in MLflow (``MLFLOW_RUN_ID`` is
set: see :mod:`workbench.tracking`) each number also goes to that run, from rank 0 only in a
training job; MLflow is imported on the first such call. Standard library only otherwise: cheap
to import in a kernel.
"""

from __future__ import annotations

import json
import math
import os
import sys
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
    if os.environ.get("MLFLOW_RUN_ID") and os.environ.get("RANK", "0") == "0":
        _to_run(name, value, step)


_run_client: Any = None
_run_failed = False


def _to_run(name: str, value: Any, step: int | None) -> None:
    """Log a number to the workload's MLflow run; the first failure says so once and ends it."""
    global _run_client, _run_failed
    if _run_failed or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    try:
        if _run_client is None:
            from mlflow.tracking import MlflowClient

            _run_client = MlflowClient()  # MLFLOW_TRACKING_URI, set by workbench
        _run_client.log_metric(os.environ["MLFLOW_RUN_ID"], name, float(value), step=step or 0)
    except Exception as exc:
        from .runtime.track_end import reason, shown_uri

        _run_failed = True
        uri = shown_uri(os.environ.get("MLFLOW_TRACKING_URI", ""))
        print(
            f"workbench: warning: MLflow at {uri} unreachable ({reason(exc)}); "
            f"metrics are no longer sent there; they stay in {METRICS_FILE} (and provenance.json)",
            file=sys.stderr,
        )
