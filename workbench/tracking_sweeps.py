"""A tracked sweep is one MLflow parent run with a child run per point of its grid.

Every way of sweeping (``workbench notebook run --sweep``, :meth:`workbench.Service.sweep`,
:func:`workbench.sweeps.sweep`) launches its points inside :func:`sweep_parent`. When tracking
is on for the points, the first point's launch creates the parent run (so a grid refused
before its first launch leaves nothing in MLflow): named after the sweep, with the grid's
axes as params (``sweep.lr = [0.1, 0.01]``) and the notebook's source and git tags. Each
point's own run then carries ``mlflow.parentRunId``, which MLflow's UI shows as the sweep's
children (and its compare view compares). When the sweep ends, the parent's status sums its
children up: KILLED if the sweep was interrupted or a point was cancelled, FAILED if a point
failed or a launch raised, FINISHED otherwise.

If the store cannot be reached for the parent, one warning line says so and the points run
untracked, without a warning each.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .runtime import track_end

if TYPE_CHECKING:
    from .store import Store

#: Tag of a child run naming its parent, as MLflow's UI reads it.
PARENT_TAG = "mlflow.parentRunId"


@dataclasses.dataclass
class SweepParent:
    """The sweep being launched in this context, and its parent run once made."""

    name: str
    axes: dict[str, list[Any]]
    run: dict[str, Any] | None = None
    unreachable: bool = False
    children: list[str] = dataclasses.field(default_factory=list)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


_CURRENT: contextvars.ContextVar[SweepParent | None] = contextvars.ContextVar("workbench_sweep", default=None)


def current() -> SweepParent | None:
    """The sweep whose points this thread is launching, if any."""
    return _CURRENT.get()


def axes_of(points: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The grid's axes from its points: each parameter and its values, in order."""
    axes: dict[str, list[Any]] = {}
    for point in points:
        for name, value in point.items():
            values = axes.setdefault(str(name), [])
            if value not in values:
                values.append(value)
    return axes


def sweep_name(raw: Mapping[str, Any]) -> str:
    """The sweep's name: the spec's name, else ``sweep-`` and the notebook's stem."""
    if raw.get("name"):
        return str(raw["name"])
    notebook = str(raw.get("notebook") or "notebook")
    stem = notebook.rstrip("/").rsplit("/", 1)[-1].removesuffix(".ipynb") or "notebook"
    return f"sweep-{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


@contextlib.contextmanager
def sweep_parent(
    store: Store, raw: Mapping[str, Any], points: Sequence[Mapping[str, Any]]
) -> Iterator[SweepParent]:
    """Launch the points of a sweep of spec ``raw`` inside this block; its parent run (if one
    was made) ends when the block exits."""
    parent = SweepParent(sweep_name(raw), axes_of(points))
    token = _CURRENT.set(parent)
    outcome: str | None = "FAILED"
    try:
        yield parent
        outcome = None  # from the children's statuses
    except KeyboardInterrupt:
        outcome = "KILLED"
        raise
    finally:
        _CURRENT.reset(token)
        if parent.run is not None:
            _end(store, parent, outcome)


def parent_tags(parent: SweepParent, child_tags: Mapping[str, str]) -> dict[str, str]:
    """The parent's tags: the children's source, git and user, and the sweep's own."""
    shared = ("mlflow.source.name", "mlflow.source.type", "mlflow.source.git.commit", "mlflow.user")
    tags = {key: child_tags[key] for key in shared if key in child_tags}
    tags.update(
        {
            "mlflow.runName": parent.name,
            "workbench.kind": "sweep",
            "workbench.sweep": parent.name,
            "workbench.backend": child_tags.get("workbench.backend", ""),
        }
    )
    return tags


def parent_params(parent: SweepParent) -> dict[str, str]:
    return {f"sweep.{name}": json.dumps(values, default=str)[:6000] for name, values in parent.axes.items()}


def _end(store: Store, parent: SweepParent, outcome: str | None) -> None:
    """Set the parent's status from its children's (or ``outcome``), once, never raising."""
    from .errors import NotFound

    statuses = []
    for child in parent.children:
        try:
            statuses.append(store.get(child).status)
        except NotFound:
            continue
    status = outcome or "FINISHED"
    if "cancelled" in statuses:
        status = "KILLED"
    elif status == "FINISHED" and any(s not in ("succeeded", "cancelled") for s in statuses):
        status = "FAILED"
    tracked = parent.run or {}
    try:
        from mlflow.tracking import MlflowClient

        with track_end.short_requests():
            client = MlflowClient(tracking_uri=str(tracked["tracking_uri"]))
            client.set_tag(str(tracked["run_id"]), "workbench.sweep.runs", str(len(parent.children)))
            client.set_terminated(str(tracked["run_id"]), status=status)
    except Exception as exc:
        print(track_end.warning(tracked, track_end.reason(exc)), file=sys.stderr, flush=True)
