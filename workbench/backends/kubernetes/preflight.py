"""Refuse, before anything is created, a pod that no node of the cluster could ever hold."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from ...errors import SpecError
from ...units import format_bytes, parse_quantity


def _fmt(resource: str, amount: Decimal) -> str:
    if resource == "memory":
        return format_bytes(int(amount))
    return f"{amount.normalize():f}"


def _allocatable(node: Mapping[str, Any]) -> dict[str, Decimal]:
    values = node.get("status", {}).get("allocatable") or {}
    out: dict[str, Decimal] = {}
    for key, raw in values.items():
        try:
            out[key] = parse_quantity(raw)
        except ValueError:
            continue
    return out


def check_fits(
    requests: Mapping[str, str], node_selector: Mapping[str, str], nodes: Sequence[Mapping[str, Any]] | None
) -> None:
    """Raise if no node's allocatable covers ``requests`` (per pod).

    Nodes that do not match ``node_selector`` do not count. Without node information
    (``None``: we may not list nodes; empty: an autoscaled pool at zero) nothing is checked.

    Raises:
        SpecError: naming the resource, the request and the largest node's capacity.
    """
    if not nodes:
        return
    wanted = {key: parse_quantity(value) for key, value in requests.items() if value not in (None, "", "0")}
    if not wanted:
        return
    eligible = [
        n for n in nodes if node_selector.items() <= (n.get("metadata", {}).get("labels") or {}).items()
    ]
    if not eligible:
        pairs = ", ".join(f"{k}={v}" for k, v in sorted(node_selector.items()))
        raise SpecError(
            f"no node of the cluster has the labels {pairs} ({len(nodes)} nodes checked)",
            value=pairs,
            hint="check --gpu-type / --node-selector against `kubectl get nodes --show-labels`",
        )
    capacities = [(n.get("metadata", {}).get("name", "?"), _allocatable(n)) for n in eligible]
    if any(
        all(cap.get(key, Decimal(0)) >= amount for key, amount in wanted.items()) for _, cap in capacities
    ):
        return
    for key, amount in sorted(wanted.items()):
        name, best = max(capacities, key=lambda item: item[1].get(key, Decimal(0)))
        largest = best.get(key, Decimal(0))
        if largest < amount:
            raise SpecError(
                f"asks for {_fmt(key, amount)} {key} per pod but the largest node ({name}) has "
                f"{_fmt(key, largest)} allocatable",
                value=_fmt(key, amount),
                hint="ask for less, or for more nodes (train --nodes) instead of a bigger one",
            )
    raise SpecError(
        "no single node has all of " + ", ".join(f"{_fmt(k, v)} {k}" for k, v in sorted(wanted.items())),
        value=dict(requests),
        hint="ask for less of one of them",
    )
