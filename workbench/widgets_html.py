"""The HTML the cell widgets show: titles, status with its clock, each kind's parts, usage plots.

Pure functions of a workload record (and its usage), so they are tested without a front end.
Plots are tiny inline SVG sparklines; colours come from JupyterLab's theme variables. Every
figure a test or a tool may want is also in a ``data-*`` attribute.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from .store import ACTIVE, CANCELLED, FAILED, PENDING, RUNNING, SUCCEEDED, Workload
from .sweeps import progress_text
from .usage import SOURCES, percent, size

COLOURS = {
    PENDING: "var(--jp-warn-color1, #f57c00)",
    RUNNING: "var(--jp-info-color1, #0288d1)",
    SUCCEEDED: "var(--jp-success-color1, #388e3c)",
    FAILED: "var(--jp-error-color1, #d32f2f)",
    CANCELLED: "var(--jp-ui-font-color2, #757575)",
}
LINE = "var(--jp-brand-color1, #1976d2)"
MUTED = "color: var(--jp-ui-font-color2, #757575)"


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def duration(seconds: float) -> str:
    """``4s``, ``3m 05s``, ``2h 03m``: a running clock, to the second."""
    seconds = max(0.0, seconds)
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def title(workload: Workload) -> str:
    return (
        f'<div class="wb-title" data-name="{esc(workload.id)}"><b>{esc(workload.id)}</b> '
        f'<span style="{MUTED}">{esc(workload.kind)} on {esc(workload.backend)}</span></div>'
    )


def status(workload: Workload | None, now: float) -> str:
    """The status word in its colour, with how long it has been so (or how long it took)."""
    if workload is None:
        return '<span class="wb-status" data-status="deleted"><b>deleted</b></span>'
    word = workload.status
    if word == FAILED and workload.exit_code is not None:
        word = f"failed (exit code {workload.exit_code})"
    if workload.status in ACTIVE:
        since = workload.started if workload.status == RUNNING and workload.started else workload.created
        clock = f"for {duration(now - since)}"
    else:
        began = workload.started or workload.created
        took = (workload.ended or now) - began
        clock = f"in {took:.1f}s" if took < 60 else f"in {duration(took)}"
    message = ""
    if workload.message.strip() and workload.message.strip().lower() not in (workload.status, SUCCEEDED):
        text = workload.message if len(workload.message) <= 200 else workload.message[:199] + "…"
        message = f'<div class="wb-message" style="{MUTED}">{esc(text)}</div>'
    colour = COLOURS.get(workload.status, "inherit")
    return (
        f'<span class="wb-status" data-status="{esc(workload.status)}">'
        f'<b style="color: {colour}">{esc(word)}</b></span> '
        f'<span class="wb-clock">{esc(clock)}</span>{message}'
    )


def parts(workload: Workload) -> str:
    """What the record says about the workload's ranks, replicas or workers (empty: nothing)."""
    spec, info = workload.spec, workload.info
    rows: list[str] = []
    if workload.kind == "train":
        nodes, procs = int(spec.get("nodes") or 1), int(spec.get("procs_per_node") or 1)
        ranks = nodes * procs
        rows.append(
            f"{nodes} node{'s' * (nodes != 1)}, {procs} process{'es' * (procs != 1)} each: {ranks} ranks"
        )
    elif workload.kind == "dask":
        rows.append(_dask(spec, info))
    elif workload.kind == "serve":
        rows.extend(_serve(info))
    elif workload.kind == "notebook":
        parameters = spec.get("parameters") or {}
        if parameters:
            rows.append(
                "parameters " + ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in parameters.items())
            )
        if spec.get("schedule"):
            rows.append(f"schedule {spec['schedule']}")
    if workload.gpus:
        rows.append("GPUs " + ", ".join(workload.gpus))
    rows.append(mlflow_link(info))
    return "".join(f'<div class="wb-part">{row}</div>' for row in rows if row)


def _dask(spec: Mapping[str, Any], info: Mapping[str, Any]) -> str:
    adapt = info.get("adapt") if "adapt" in info else None
    if adapt is None and "requested_workers" not in info and spec.get("adapt"):
        adapt = [spec["adapt"].get("minimum"), spec["adapt"].get("maximum")]
    if isinstance(adapt, list) and len(adapt) == 2:
        workers = f"adaptive, {esc(adapt[0])} to {esc(adapt[1])} workers"
    else:
        count = info.get("requested_workers", spec.get("workers"))
        workers = f"{esc(count)} worker{'s' * (count != 1)}"
    text = f'<span data-workers="{esc(info.get("requested_workers", spec.get("workers")))}">{workers}</span>'
    if info.get("address"):
        text += f" · scheduler {esc(info['address'])}"
    link = dashboard_link(info)
    if link:
        text += f' · <a href="{esc(link)}" target="_blank" rel="noopener">dashboard</a>'
    return text


def mlflow_link(info: Mapping[str, Any]) -> str:
    """A link to the workload's MLflow run (its id when the run has no page); empty when untracked."""
    tracked = info.get("mlflow")
    if not isinstance(tracked, Mapping) or not tracked.get("run_id"):
        return ""
    url = tracked.get("url")
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        return (
            f'<a class="wb-mlflow" href="{esc(url)}" target="_blank" rel="noopener">MLflow run '
            f"{esc(tracked['run_id'])}</a>"
        )
    return f'<span class="wb-mlflow">MLflow run {esc(tracked["run_id"])}</span>'


def dashboard_link(info: Mapping[str, Any]) -> str | None:
    """The dashboard through JupyterHub's proxy when in a hub, else the scheduler's own address."""
    prefix, path = os.environ.get("JUPYTERHUB_SERVICE_PREFIX"), info.get("dashboard_path")
    if prefix and isinstance(path, str) and path:
        return prefix.rstrip("/") + "/" + path.lstrip("/")
    link = info.get("dashboard")
    return link if isinstance(link, str) and link.startswith(("http://", "https://")) else None


def _serve(info: Mapping[str, Any]) -> list[str]:
    if info.get("revision") is None and "ready" not in info:
        return []
    head = [f"revision {esc(info.get('revision'))}"]
    canary, traffic = info.get("canary"), info.get("traffic") or {}
    if canary:
        head.append(f"canary {esc(canary)} at {esc(traffic.get(str(canary), '?'))}%")
    if "ready" in info:
        head.append(
            f'<span data-ready="{esc(info.get("ready"))}" data-desired="{esc(info.get("desired"))}">'
            f"{esc(info.get('ready'))}/{esc(info.get('desired', '?'))} replicas ready</span>"
        )
    if info.get("rps") is not None:
        head.append(f"{esc(info['rps'])} req/s")
    url = info.get("url")
    if isinstance(url, str) and url:
        head.append(f"<code>{esc(url)}</code>")
    rows = [" · ".join(head)]
    rollout = info.get("rollout") or {}
    if isinstance(rollout, dict) and rollout.get("phase") in ("progressing", "failed"):
        rows.append(f"rollout {esc(rollout['phase'])}: {esc(rollout.get('message', ''))}")
    revisions = info.get("revisions") or []
    if isinstance(revisions, list) and len(revisions) > 1:
        rows.extend(
            f'<span style="{MUTED}">revision {esc(r.get("revision"))}: {esc(r.get("state"))}, '
            f"{esc(r.get('ready'))}/{esc(r.get('desired'))} ready, {esc(r.get('traffic'))}% of traffic</span>"
            for r in revisions
            if isinstance(r, dict)
        )
    return rows


def sparkline(values: Sequence[float], *, top: float | None = None, width: int = 96, height: int = 18) -> str:
    """An inline SVG line of ``values`` (oldest first) scaled to ``top`` (default: their maximum)."""
    peak = max([*values, top or 0.0, 1e-9])
    step = width / max(len(values) - 1, 1)
    points = " ".join(
        f"{i * step:.1f},{height - 1 - (v / peak) * (height - 2):.1f}" for i, v in enumerate(values)
    )
    line = (
        f'<polyline points="{points}" style="fill: none; stroke: {LINE}; stroke-width: 1.5"/>'
        if len(values) > 1
        else ""
    )
    return (
        f'<svg class="wb-spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'style="vertical-align: middle; background: var(--jp-layout-color2, #eee)">{line}</svg>'
    )


def usage(workload: Workload, summary: Mapping[str, Any] | None, history: Sequence[Mapping[str, Any]]) -> str:
    """CPU, memory (and GPU when there are figures) now, their peaks, and sparklines of the history."""
    if summary is None:
        if SOURCES.get(workload.backend) is None:
            note = f"no resource metrics for the {workload.backend} backend yet"
        elif workload.done:
            note = "no resource samples (it ended before its first sample, or sampling is off)"
        else:
            note = "waiting for the first resource sample"
        return f'<div class="wb-usage" style="{MUTED}">{esc(note)}</div>'
    cpu = [float(s["cpu_percent"]) for s in history]
    rss = [float(s["rss_bytes"]) for s in history]
    attrs = {
        "data-cpu-percent": summary["cpu_percent"],
        "data-peak-cpu-percent": summary["peak_cpu_percent"],
        "data-rss-bytes": summary["rss_bytes"],
        "data-peak-rss-bytes": summary["peak_rss_bytes"],
        "data-samples": summary["samples"],
    }
    cells = [
        f"CPU {sparkline(cpu, top=100.0)} <b>{percent(summary['cpu_percent'])}</b> "
        f'<span style="{MUTED}">peak {percent(summary["peak_cpu_percent"])}</span>',
        f"memory {sparkline(rss, top=max(rss, default=0.0) * 1.25)} <b>{size(summary['rss_bytes'])}</b> "
        f'<span style="{MUTED}">peak {size(summary["peak_rss_bytes"])}</span>',
    ]
    if summary.get("gpu_util") is not None or summary.get("gpu_memory_bytes") is not None:
        gpu = [float(s.get("gpu_util") or 0.0) for s in history]
        attrs["data-gpu-util"] = summary.get("gpu_util")
        attrs["data-gpu-memory-bytes"] = summary.get("gpu_memory_bytes")
        cells.append(
            f"GPU {sparkline(gpu, top=100.0)} <b>{percent(summary.get('gpu_util'))} "
            f"{size(summary.get('gpu_memory_bytes'))}</b> "
            f'<span style="{MUTED}">peak {percent(summary.get("peak_gpu_util"))}</span>'
        )
    data = " ".join(f'{key}="{esc("" if value is None else value)}"' for key, value in attrs.items())
    body = ' <span style="margin: 0 0.5em">·</span> '.join(cells)
    return f'<div class="wb-usage" {data}>{body}</div>'


def sidebar_link(workload_id: str) -> str:
    """A JupyterLab command link that opens the Workbench panel (nothing happens elsewhere)."""
    args = esc(json.dumps({"name": workload_id}))
    return (
        f'<button class="jupyter-button" title="open the Workbench sidebar (JupyterLab)" '
        f'data-commandlinker-command="workbench:open" data-commandlinker-args="{args}">'
        "Show in sidebar</button>"
    )


def progress(counts: Mapping[str, int], name: str | None) -> str:
    """A sweep's line: ``3 of 8 done (2 succeeded, 1 failed), 2 running, 3 waiting``."""
    data = " ".join(f'data-{key}="{value}"' for key, value in counts.items())
    label = f"<b>sweep {esc(name)}</b>: " if name else "<b>sweep</b>: "
    return f'<div class="wb-sweep" {data}>{label}{esc(progress_text(counts))}</div>'
