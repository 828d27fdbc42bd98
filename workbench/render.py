"""How workloads are shown by the CLI and the magics: tables, JSON, YAML, descriptions."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from .store import Workload

COLUMNS = ("NAME", "KIND", "BACKEND", "STATUS", "AGE", "GPUS", "MESSAGE")


def age(seconds: float) -> str:
    """Kubectl-style age: 42s, 5m, 3h, 2d."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def endpoint(w: Workload) -> str:
    """One line on a serve workload's endpoint: URL, revision (and canary), replicas, request rate."""
    info = w.info
    if not info.get("url"):
        return ""
    revision = f"rev {info.get('revision', '?')}"
    if info.get("canary"):
        traffic = info.get("traffic") or {}
        revision += f" + canary {info['canary']} ({traffic.get(str(info['canary']), '?')}%)"
    rate = info.get("rps")
    parts = [str(info["url"]), revision, f"{info.get('ready', 0)}/{info.get('desired', '?')} ready"]
    if isinstance(rate, (int, float)):
        parts.append(f"{rate:.3g} req/s")
    return "  ".join(parts)


def _row(w: Workload, now: float) -> tuple[str, ...]:
    message = w.message or (endpoint(w) if w.kind == "serve" and not w.done else "")
    message = message if len(message) <= 90 or w.kind == "serve" else message[:87] + "..."
    return (w.id, w.kind, w.backend, w.status, age(now - w.created), ",".join(w.gpus) or "-", message)


def columns(rows: Sequence[Sequence[str]]) -> str:
    """Rows as left-aligned text columns (the first row is the header)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows)


def table(workloads: Sequence[Workload]) -> str:
    """A plain-text table of workloads."""
    now = time.time()
    return columns([COLUMNS, *(_row(w, now) for w in workloads)])


def as_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str)


def as_yaml(data: Any) -> str:
    import yaml

    text: str = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    return text


def as_yaml_docs(docs: Sequence[Any]) -> str:
    """Multi-document YAML; text with line breaks (code in a ConfigMap) as literal blocks."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value and not any(c in value for c in "\r\t") else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    result: str = yaml.dump_all(docs, Dumper=Dumper, sort_keys=False, default_flow_style=False)
    return result


def describe(w: Workload, usage: dict[str, Any] | None = None, output: str = "yaml") -> str:
    """A readable YAML description of one workload (with a ``usage:`` block when ``usage``, the
    service's resource report, is given); with ``output="json"`` its record, and the usage summary."""
    if output == "json":
        return as_json({**w.to_dict(), **({"usage": usage.get("summary")} if usage is not None else {})})
    data = w.to_dict()
    for key in ("created", "started", "ended"):
        if data[key]:
            data[key] = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(data[key]))
    data["name"] = data.pop("id")
    if w.kind == "serve":
        keys = ("url", "proxy_url", "model_name", "revision", "canary", "traffic", "ready", "desired", "rps",
                "rollout", "revisions")  # fmt: skip
        data["endpoint"] = {k: w.info[k] for k in keys if w.info.get(k) is not None}
    tracked = w.info.get("mlflow")
    if isinstance(tracked, dict) and tracked.get("run_id"):  # the MLflow run: its page first
        fields = ("url", "run_id", "experiment_id", "parent_run_id", "status")
        data["mlflow"] = {k: tracked[k] for k in fields if tracked.get(k) is not None}
    if usage is not None:
        from .usage import describe_block

        data["usage"] = describe_block(usage)
    order = [
        "name",
        "kind",
        "backend",
        "status",
        "message",
        "exit_code",
        "created",
        "started",
        "ended",
        "gpus",
        "owner",
        "session",
        "run_dir",
        "pid",
        "supervisor_pid",
        "endpoint",
        "mlflow",
        "usage",
        "spec",
    ]
    return as_yaml({k: data[k] for k in order if k in data})


def sweep_rows(workloads: Sequence[Workload], metrics: Sequence[dict[str, Any]]) -> list[tuple[str, ...]]:
    """A table (header first) of each sweep run's parameters, status and last ``metrics``."""
    parameters = [dict(w.spec.get("parameters") or {}) for w in workloads]
    names = list(dict.fromkeys(k for p in parameters for k in p))
    metric_names = list(dict.fromkeys(k for m in metrics for k in m))
    rows: list[tuple[str, ...]] = [("NAME", *names, "STATUS", *metric_names)]
    for workload, params, values in zip(workloads, parameters, metrics, strict=True):
        rows.append(
            (
                workload.id,
                *(_cell(params.get(n, "-")) for n in names),
                workload.status,
                *(_cell(values.get(n, "-")) for n in metric_names),
            )
        )
    return rows


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value if isinstance(value, str) else json.dumps(value)
