"""Notebook sweeps you can look at: :func:`sweep` returns a :class:`Sweep`.

::

    from workbench.sweeps import sweep

    runs = sweep({'kind': 'notebook', 'notebook': 'train.ipynb', 'name': 'lr-sweep'},
                 {'lr': [0.1, 0.01], 'seed': [0, 1]}, parallel=2)
    runs.to_pandas()   # one row per point: name, parameters, status, duration, metrics, run_dir

Like :meth:`workbench.Service.sweep` (which still returns the list of final records), every
point's parameters are checked before the first run is created, runs are launched in grid
order with at most ``parallel`` running at once, and interrupting the wait cancels the runs
still going. A :class:`Sweep` is the front end to them: displayed in a notebook whose front
end renders widgets (:mod:`workbench.widgets`) it is a live progress bar (done, running,
failed of total) with a Cancel button, and ``sweep(...)`` shows one as it starts; elsewhere
(papermill, a terminal) it is the same table ``workbench notebook run --sweep`` prints.
With ``wait=False`` the runs are launched from a background thread and the call returns at
once (``.wait()`` joins it); the kernel stays usable meanwhile.
"""

from __future__ import annotations

import builtins
import itertools
import os
import threading
import time
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import NotFound, SpecError, Timeout
from .store import CANCELLED, FAILED, PENDING, RUNNING, SUCCEEDED, Workload

if TYPE_CHECKING:
    import pandas  # type: ignore[import-untyped]

    from .service import Service

#: Columns of :meth:`Sweep.to_pandas` besides the parameters and the metrics.
FIXED_COLUMNS = ("name", "status", "duration", "run_dir")
POLL = 0.1  # seconds between two looks at the running runs
QUEUED = "queued"  # a point whose run is not launched yet
SKIPPED = "skipped"  # a point whose run never will be (the sweep was cancelled, or a launch failed)


def tally(total: int, statuses: Iterable[str], *, launched: int, finished: bool = False) -> dict[str, int]:
    """Counts by status of a sweep of ``total`` points, ``launched`` of which have a run; the
    others are ``queued``, or ``skipped`` once the sweep is ``finished``."""
    left = max(total - launched, 0)
    counts = {"total": total, QUEUED: 0 if finished else left, SKIPPED: left if finished else 0}
    counts.update({status: 0 for status in (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED)})
    for status in statuses:
        counts[status if status in counts else FAILED] += 1
    return counts


class Sweep:
    """The runs of one notebook over a grid of parameters (made by :func:`sweep`).

    Attributes:
        service: the service that launches and reads the runs.
        total: the number of points in the grid.
        name: the spec's name (runs are ``NAME-0``, ``NAME-1``…), or None.
    """

    def __init__(
        self,
        service: Service,
        runs: list[dict[str, Any]],
        *,
        parallel: int,
        cwd: str | None,
        name: str | None,
        points: list[dict[str, Any]] | None = None,
    ) -> None:
        if parallel < 1:
            raise SpecError(f"parallel={parallel} must be at least 1", value=parallel)
        self.service = service
        self.runs = runs
        self.total = len(runs)
        self.name = name
        self.parallel = parallel
        self.cwd = cwd
        self.points = points if points is not None else [dict(r.get("parameters") or {}) for r in runs]
        self._names: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    # -- launching -------------------------------------------------------------------------
    def check(self) -> None:
        """Check every point's spec and notebook parameters; nothing is created.

        Raises:
            SpecError: the first bad point.
        """
        from .notebooks import UndeclaredParameterWarning, notebook_payload
        from .spec import NotebookSpec

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndeclaredParameterWarning)
            for raw in self.runs:
                spec = self.service.resolve(raw)
                if isinstance(spec, NotebookSpec):
                    notebook_payload(spec, session=None, cwd=self.cwd, home=self.service.settings.home)

    def start(self) -> Sweep:
        """Launch the runs from a background thread (a second call does nothing)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._launch, name="workbench-sweep", daemon=True)
                self._thread.start()
        return self

    def _launch(self) -> None:
        from .tracking_sweeps import sweep_parent

        pending, running = deque(self.runs), list[str]()
        raw = {"name": self.name, "notebook": self.runs[0].get("notebook") if self.runs else None}
        try:
            with sweep_parent(self.service.store, raw, self.points):  # MLflow's parent run, when tracked
                while pending or running:
                    while pending and len(running) < self.parallel and not self._stop.is_set():
                        workload = self.service.launch(pending.popleft(), cwd=self.cwd)
                        with self._lock:
                            self._names.append(workload.id)
                        running.append(workload.id)
                    if self._stop.is_set():
                        pending.clear()
                    time.sleep(POLL)
                    running = [name for name in running if not self._ended(name)]
        except BaseException as exc:  # reported by wait(), in the caller's thread
            self._error = exc
        finally:
            self._finished.set()

    def _ended(self, name: str) -> bool:
        try:
            return self.service.get(name).done
        except NotFound:  # deleted meanwhile
            return True

    @property
    def names(self) -> builtins.list[str]:
        """The runs launched so far, in grid order."""
        with self._lock:
            return list(self._names)

    @property
    def finished(self) -> bool:
        """Whether every run was launched and has ended (or the sweep was cancelled, or failed)."""
        return self._finished.is_set()

    def wait(self, timeout: float | None = None) -> Sweep:
        """Block until every run has ended; interrupting it cancels the runs still going.

        Raises:
            Timeout: runs were still going after ``timeout`` seconds.
            WorkbenchError: launching a run failed (the runs already going keep going).
        """
        try:
            ended = self._finished.wait(timeout)
        except KeyboardInterrupt:
            self.cancel()
            raise
        if not ended:
            raise Timeout(f"the sweep was still running after {timeout}s", value=timeout)
        if self._error is not None:
            raise self._error
        return self

    def cancel(self) -> Sweep:
        """Launch no more runs and cancel those still going."""
        self._stop.set()
        for name in self.names:
            try:
                if not self.service.store.get(name).done:
                    self.service.cancel(name)
            except NotFound:
                continue
        return self

    # -- reading ---------------------------------------------------------------------------
    def records(self) -> builtins.list[Workload]:
        """The launched runs' records, in grid order (deleted ones left out)."""
        found = []
        for name in self.names:
            try:
                found.append(self.service.store.get(name))
            except NotFound:
                continue
        return found

    def __iter__(self) -> Iterator[Workload]:
        return iter(self.records())

    def __len__(self) -> int:
        return self.total

    def progress(self) -> dict[str, int]:
        """``{"total", "queued", "skipped", "pending", "running", "succeeded", "failed", "cancelled"}``."""
        finished, names = self.finished, self.names
        return tally(self.total, [r.status for r in self.records()], launched=len(names), finished=finished)

    def summary(self) -> str:
        """``sweep lr-sweep: 3 of 4 done (3 succeeded), 1 running``."""
        return f"sweep{' ' + self.name if self.name else ''}: {progress_text(self.progress())}"

    def table(self) -> str:
        """The summary, then each launched run's parameters, status and last metrics."""
        from . import render
        from .notebooks import run_metrics

        records = self.records()
        rows = render.sweep_rows(records, [run_metrics(r) for r in records])
        return self.summary() + ("\n" + render.columns(rows) if records else "")

    def to_pandas(self) -> pandas.DataFrame:
        """One row per point of the grid, in grid order: ``name``, each parameter, ``status``,
        ``duration`` (seconds, once ended), each metric the run logged (its last value), and
        ``run_dir``. A point not launched yet has status ``queued`` (``skipped`` once the sweep
        was cancelled or a launch failed) and no name; a run deleted since, ``deleted``. A parameter
        named like a fixed column is prefixed ``param_``, a metric named like either ``metric_``.
        """
        import pandas as pd

        from .notebooks import run_directory, run_metrics

        names, found = self.names, {r.id: r for r in self.records()}
        rows: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = []
        for i, raw in enumerate(self.runs):
            name = names[i] if i < len(names) else None
            record = found.get(name) if name else None
            parameters = dict((record.spec if record else raw).get("parameters") or {})
            fixed: dict[str, Any] = {"name": name, "status": "deleted"}
            if name is None:
                fixed["status"] = SKIPPED if self.finished else QUEUED
            fixed["duration"] = fixed["run_dir"] = None
            metrics: dict[str, Any] = {}
            if record is not None:
                fixed["status"] = record.status
                if record.started is not None and record.ended is not None:
                    fixed["duration"] = record.ended - record.started
                try:
                    fixed["run_dir"] = run_directory(record)
                except SpecError:
                    fixed["run_dir"] = record.run_dir
                metrics = run_metrics(record)
            rows.append((fixed, parameters, metrics))
        return pd.DataFrame([_row(*row) for row in rows], columns=_columns(rows))

    def __repr__(self) -> str:
        return f"<Sweep{' ' + self.name if self.name else ''}: {progress_text(self.progress())}>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from .widgets import sweep_bundle

        return sweep_bundle(self)


def progress_text(counts: Mapping[str, int]) -> str:
    """``3 of 8 done (2 succeeded, 1 failed), 2 running, 3 waiting``."""
    done = [f"{counts[k]} {k}" for k in (SUCCEEDED, FAILED, CANCELLED) if counts[k]]
    ended = counts[SUCCEEDED] + counts[FAILED] + counts[CANCELLED]
    text = f"{ended} of {counts['total']} done" + (f" ({', '.join(done)})" if done else "")
    waiting = counts[QUEUED] + counts[PENDING]
    text += f", {counts[RUNNING]} running" if counts[RUNNING] else ""
    text += f", {waiting} waiting" if waiting else ""
    return text + (f", {counts[SKIPPED]} not launched" if counts[SKIPPED] else "")


def _parameter(name: str) -> str:
    return f"param_{name}" if name in FIXED_COLUMNS else name


def _metric(name: str, taken: set[str]) -> str:
    return f"metric_{name}" if name in taken else name


def _columns(rows: Sequence[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]) -> list[str]:
    parameters = list(dict.fromkeys(_parameter(k) for _, p, _ in rows for k in p))
    taken = {*FIXED_COLUMNS, *parameters}
    metrics = list(dict.fromkeys(_metric(k, taken) for _, _, m in rows for k in m))
    return ["name", *parameters, "status", "duration", *metrics, "run_dir"]


def _row(fixed: dict[str, Any], parameters: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    taken = {*FIXED_COLUMNS, *(_parameter(k) for k in parameters)}
    return {**fixed, **{_parameter(k): v for k, v in parameters.items()}} | {
        _metric(k, taken): v for k, v in metrics.items()
    }


def sweep(
    spec: Mapping[str, Any],
    grid: Mapping[str, Sequence[Any]],
    *,
    parallel: int | None = None,
    cwd: str | None = None,
    wait: bool = True,
    service: Service | None = None,
) -> Sweep:
    """Run a notebook spec once per point of ``grid`` (``{"lr": [0.1, 0.01]}``), at most
    ``parallel`` (default: the number of cores) at once, from ``cwd`` (default: this one).

    Returns the :class:`Sweep` once every run has ended (at once with ``wait=False``). In a
    notebook front end that renders widgets its progress shows as it starts.

    Raises:
        SpecError: a bad spec or parameter at any point of the grid; nothing was created.
    """
    from .notebooks import sweep_runs
    from .service import Service
    from .spec import spec_mapping

    service = service or Service()
    raw = dict(spec_mapping(spec))
    names = list(grid)
    combos = [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]
    result = Sweep(
        service,
        sweep_runs(raw, combos),
        parallel=parallel or os.cpu_count() or 1,
        cwd=cwd or os.getcwd(),
        name=raw.get("name"),
        points=combos,
    )
    result.check()
    from .widgets import show_sweep

    show_sweep(result)
    result.start()
    return result.wait() if wait else result
