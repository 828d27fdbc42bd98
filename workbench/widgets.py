"""Live widgets in notebook cells: one per launch from a kernel, and a sweep's progress.

A launch from ``%%pod``, ``%%train``, ``%batch``, ``%dask`` or ``%%serve`` shows, above the
logs that still stream as before, a widget with the workload's name, kind and backend, its
status and clock (the duration once it ends), what the record says of its parts (Dask
workers, endpoint replicas and revisions, training ranks), CPU, memory and GPU figures with
sparklines of their history, and buttons: *Cancel* (the service cancels it), *Logs* (the log's
tail below the buttons) and *Show in sidebar* (a JupyterLab command link to the Workbench
panel). A ``Workload`` that is a cell's value (``Service().launch(...)``, ``service.get(name)``)
shows the same widget, through the display formatter that ``%load_ext workbench`` registers
(:meth:`workbench.magics.WorkbenchMagics.workload_bundle`). Every widget of the kernel is kept
up to date by one thread (:mod:`workbench.widgets_watch`) that follows the shared store, never
by polling a backend per widget.

Widget or text
--------------
A kernel cannot ask its front end whether it renders widgets, so the choice is made from
what is known for sure, and text wins when in doubt:

1. ``WORKBENCH_WIDGETS=1`` (or ``true``, ``yes``, ``on``) forces widgets, ``0`` (``false``,
   ``no``, ``off``) forces text.
2. Otherwise widgets need an IPython kernel with a comm manager (terminal IPython and plain
   Python get text) and a front end known to render them: a kernel that Jupyter Server
   started for a notebook session (JupyterLab, Notebook 7, Voilà, JupyterHub) — its connection
   file names the session (``jupyter_session``), written by the server for that kernel alone,
   so a kernel that papermill, nbclient, nbconvert, ``jupyter console`` or a test starts has
   none, even when it inherits a Lab kernel's environment (``!papermill`` in a cell, or
   ``%batch``, whose notebook runs under papermill) — or Google Colab.
   Other front ends that render widgets (VS Code) get text unless ``WORKBENCH_WIDGETS=1``.

Text mode prints exactly what the magics printed before widgets existed.

While a cell waits on its workload (``%%pod`` without ``--detach``) the kernel handles no
widget messages, so *Cancel* and *Logs* act once the cell returns; interrupting the kernel
(the ■ button) cancels the workload the cell waits on, as it always has.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .store import ACTIVE, Workload
from .widgets_mode import wanted

if TYPE_CHECKING:  # the widgets' own modules load with the first widget, not in text mode
    from .service import Service
    from .sweeps import Sweep
    from .widgets_watch import KernelWatcher

HISTORY = 120  # samples each plot keeps (10 minutes at the default period of 5 s)
LINGER = 10.0  # seconds a final workload is still watched, for its last usage sample
LOG_TAIL = 40  # lines the Logs button shows
LOG = logging.getLogger("workbench.widgets")


def _watcher(service: Service) -> KernelWatcher:
    from .service import Service
    from .widgets_watch import kernel_watcher

    settings = service.settings
    return kernel_watcher(lambda: Service(settings))


def _display(box: Any, text: str) -> None:
    """Show a widget with ``text`` as its plain-text form (what a saved notebook shows without it)."""
    from IPython.display import display

    bundle = dict(box._repr_mimebundle_())
    bundle["text/plain"] = text
    display(bundle, raw=True)  # type: ignore[no-untyped-call]


def show_workload(service: Service, workload: Workload) -> WorkloadView | None:
    """Display the live widget of ``workload`` when widgets are wanted; None in text mode.

    A widget that cannot be made is reported in the kernel's log and never fails the launch.
    """
    if not wanted():
        return None
    try:
        view = WorkloadView(service, workload)
        _display(view.box, f"{workload.id} ({workload.kind} on {workload.backend})")
        _watcher(service).add(view)
    except Exception:
        LOG.warning("workbench: cannot show the widget of %s", workload.id, exc_info=True)
        return None
    return view


def workload_bundle(service: Service, workload: Workload, text: str) -> dict[str, Any] | None:
    """What a ``Workload`` shown as a cell's value displays once widgets are wanted: its live
    widget, with ``text`` (IPython's usual plain text of it) for front ends without one.

    None (IPython's usual text) for a record of another store than ``service``'s, or when the
    widget cannot be made (reported in the kernel's log).
    """
    if Path(workload.run_dir).parent != service.settings.runs_dir:
        return None
    try:
        view = WorkloadView(service, workload)
        bundle = dict(view.box._repr_mimebundle_())
        _watcher(service).add(view)
    except Exception:
        LOG.warning("workbench: cannot show the widget of %s", workload.id, exc_info=True)
        return None
    bundle["text/plain"] = text
    return bundle


def show(name: str | Workload, service: Service | None = None) -> WorkloadView | None:
    """The live widget of any workload (e.g. one launched with the Python API): ``show('pod-1a2b3c')``."""
    from .service import Service

    service = service or Service()
    return show_workload(service, name if isinstance(name, Workload) else service.get(name))


class WorkloadView:
    """One workload's widget; :attr:`box` is what is displayed. Updated by the kernel's watcher."""

    wants_usage = True

    def __init__(self, service: Service, workload: Workload) -> None:
        import ipywidgets as w  # type: ignore[import-untyped]

        from . import widgets_html as fragments

        self.service = service
        self.workload_id = workload.id
        self.record: Workload | None = workload
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self._final_at: float | None = None if workload.status in ACTIVE else time.monotonic()
        self.title = w.HTML(fragments.title(workload))
        self.status = w.HTML(fragments.status(workload, time.time()))
        self.parts = w.HTML(layout=w.Layout())
        self._show_parts(workload)
        self.usage = w.HTML(fragments.usage(workload, None, []))
        self.cancel_button = w.Button(
            description="Cancel",
            icon="stop",
            tooltip=f"cancel {workload.id}",
            disabled=workload.done,
            layout=w.Layout(width="auto"),
        )
        self.logs_button = w.Button(
            description="Logs", icon="align-left", tooltip="the log's tail", layout=w.Layout(width="auto")
        )
        self.sidebar = w.HTML(fragments.sidebar_link(workload.id))
        self.output = w.Output()
        self.cancel_button.on_click(self._cancel)
        self.logs_button.on_click(self._logs)
        self.title.layout = w.Layout(margin="0 1em 0 0")
        header = w.HBox([self.title, self.status], layout=w.Layout(align_items="baseline"))
        buttons = w.HBox([self.cancel_button, self.logs_button, self.sidebar])
        self.box = w.VBox([header, self.parts, self.usage, buttons, self.output])
        self.box.add_class("workbench-widget")

    # -- called by the watcher thread ------------------------------------------------------
    def watched(self) -> tuple[str]:
        return (self.workload_id,)

    def deliver(
        self,
        workload_id: str,
        workload: Workload | None,
        summary: Any,
        samples: list[dict[str, Any]],
    ) -> None:
        from . import widgets_html as fragments

        self.record = workload
        if workload is None:  # deleted
            self.status.value = fragments.status(None, time.time())
            self.cancel_button.disabled = True
            self._final_at = self._final_at or time.monotonic()
            return
        self.history.extend(samples)
        self.status.value = fragments.status(workload, time.time())
        self._show_parts(workload)
        self.usage.value = fragments.usage(workload, summary, list(self.history))
        self.cancel_button.disabled = workload.done
        if workload.done and self._final_at is None:
            self._final_at = time.monotonic()

    def _show_parts(self, workload: Workload) -> None:
        from . import widgets_html as fragments

        self.parts.value = fragments.parts(workload)
        self.parts.layout.display = "" if self.parts.value else "none"  # no empty line

    def tick(self, now: float) -> bool:
        from . import widgets_html as fragments

        record = self.record
        if record is not None and not record.done:
            value = fragments.status(record, now)
            if value != self.status.value:  # the clock moved on a second
                self.status.value = value
            return True
        return self._final_at is None or time.monotonic() - self._final_at < LINGER

    # -- button callbacks (the kernel's main thread) ---------------------------------------
    def _cancel(self, _button: Any) -> None:
        from .errors import WorkbenchError

        try:
            self.service.cancel(self.workload_id)
        except WorkbenchError as exc:
            self.output.append_stdout(f"workbench: {exc.one_line()}\n")

    def _logs(self, _button: Any) -> None:
        from .errors import WorkbenchError

        self.output.clear_output()
        try:
            lines = "".join(self.service.logs(self.workload_id)).splitlines()
        except WorkbenchError as exc:
            self.output.append_stdout(f"workbench: {exc.one_line()}\n")
            return
        shown = lines[-LOG_TAIL:]
        head = (
            f"… {len(lines) - len(shown)} earlier lines (`%wb logs {self.workload_id}`)\n"
            if len(lines) > len(shown)
            else ""
        )
        self.output.append_stdout(head + "\n".join(shown) + ("\n" if shown else "(no output yet)\n"))


def show_sweep(sweep: Sweep) -> SweepView | None:
    """Display a sweep's live progress when widgets are wanted; None in text mode."""
    if not wanted():
        return None
    try:
        view = SweepView(sweep)
        _display(view.box, sweep.summary())
        _watcher(sweep.service).add(view)
    except Exception:
        LOG.warning("workbench: cannot show the sweep's widget", exc_info=True)
        return None
    return view


def sweep_bundle(sweep: Sweep) -> dict[str, Any]:
    """What displaying a sweep shows: its live progress widget, or its table as text."""
    if wanted():
        try:
            view = SweepView(sweep)
            bundle = dict(view.box._repr_mimebundle_())
            _watcher(sweep.service).add(view)
        except Exception:
            LOG.warning("workbench: cannot show the sweep's widget", exc_info=True)
        else:
            bundle["text/plain"] = sweep.summary()
            return bundle
    return {"text/plain": sweep.table()}


class SweepView:
    """A sweep's progress: a bar of the runs done, the counts by status, and a Cancel button."""

    wants_usage = False

    def __init__(self, sweep: Sweep) -> None:
        import ipywidgets as w

        self.sweep = sweep
        self.records: dict[str, Workload | None] = {}
        self._final_at: float | None = None
        counts = sweep.progress()
        self.bar = w.IntProgress(value=0, min=0, max=max(counts["total"], 1), layout=w.Layout(width="16em"))
        self.line = w.HTML()
        self.cancel_button = w.Button(description="Cancel sweep", icon="stop", layout=w.Layout(width="auto"))
        self.cancel_button.on_click(lambda _button: sweep.cancel())
        self.box = w.VBox([w.HBox([self.bar, self.cancel_button]), self.line])
        self.box.add_class("workbench-sweep")
        self._render(counts)

    def watched(self) -> list[str]:
        return self.sweep.names

    def deliver(self, workload_id: str, workload: Workload | None, summary: Any, samples: Any) -> None:
        self.records[workload_id] = workload

    def tick(self, now: float) -> bool:
        from .sweeps import tally

        statuses = [r.status if r is not None else "cancelled" for r in self.records.values()]
        finished = self.sweep.finished
        counts = tally(self.sweep.total, statuses, launched=len(self.sweep.names), finished=finished)
        self._render(counts)
        finished = finished and counts["pending"] + counts["running"] == 0
        if finished and self._final_at is None:
            self._final_at = time.monotonic()
        return self._final_at is None or time.monotonic() - self._final_at < 1.0

    def _render(self, counts: dict[str, int]) -> None:
        from . import widgets_html as fragments

        done = counts["succeeded"] + counts["failed"] + counts["cancelled"]
        self.bar.value = done
        self.bar.bar_style = (
            "danger" if counts["failed"] else ("success" if done == counts["total"] else "info")
        )
        self.line.value = fragments.progress(counts, self.sweep.name)
        self.cancel_button.disabled = done + counts["skipped"] == counts["total"]
