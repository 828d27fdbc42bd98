"""REST handlers for endpoints (``serve`` workloads): rollouts, undo, promotion, revisions, scaling.

Every call returns at once: a rollout answers with its state while it progresses (``phase``
progressing, complete or failed); the page follows it through the record's ``info``, which
the live events carry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..errors import SpecError
from ..spec_limits import shown
from .base import WorkbenchHandler, record
from .paths import confine_spec

if TYPE_CHECKING:
    from ..service import Service

State = dict[str, Any]
_ROLLOUT_HINT = (
    'send {"change": {"code": ..., "model_uri": ..., "env": {...}, "canary": PERCENT}}, '
    '{"action": "undo", "to_revision": N} or {"action": "promote"}'
)
_ACTIONS = {"undo": ("action", "to_revision"), "promote": ("action",)}


def _keys(body: Mapping[str, Any]) -> str:
    return ",".join(body) or "nothing"


def _change(body: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """The ``change`` of a rollout request, its file confined to the server's root."""
    change = body["change"]
    if not isinstance(change, dict):
        raise SpecError(
            f"change must be an object of revision fields, not {type(change).__name__}",
            value=shown(change),
            hint=_ROLLOUT_HINT,
        )
    if change.get("send"):
        raise SpecError(
            "send ships kernel variables, and a request to the server has no kernel",
            value=shown(change["send"]),
            hint="use %%rollout NAME --send a,b in the notebook, or read the data in the model's load()",
        )
    return confine_spec(change, root)


def _rollout_call(body: Mapping[str, Any], root: Path) -> Callable[[Service, str], State]:
    """What a ``POST workloads/NAME/rollout`` body asks for, checked; called with the service."""
    if "change" in body:
        if len(body) != 1:
            raise SpecError(
                f"a rollout request with a change holds nothing else, not {_keys(body)}",
                value=_keys(body),
                hint=_ROLLOUT_HINT,
            )
        change = _change(body, root)
        return lambda s, name: s.rollout(name, change, cwd=str(root), wait=False)
    action = body.get("action")
    if not isinstance(action, str) or action not in _ACTIONS:
        raise SpecError(
            f"send a change or an action (undo or promote), not {shown(action) if action else _keys(body)}",
            value=shown(action) if action else _keys(body),
            hint=_ROLLOUT_HINT,
        )
    extra = [key for key in body if key not in _ACTIONS[action]]
    if extra:
        raise SpecError(
            f"{action} takes {' and '.join(_ACTIONS[action])}, not {','.join(extra)}",
            value=",".join(extra),
            hint=_ROLLOUT_HINT,
        )
    if action == "promote":
        return lambda s, name: s.promote(name, wait=False)
    to_revision = body.get("to_revision")
    return lambda s, name: s.undo(name, to_revision=to_revision, wait=False)


class RolloutHandler(WorkbenchHandler):
    """``GET workloads/NAME/rollout`` (its state) and ``POST`` a change, an undo or a promotion."""

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        state = await self.call(lambda s: s.rollout_status(name, wait=False, check=False))
        self.reply(state)

    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        call = _rollout_call(self.json_object(), self.root_dir)
        state = await self.call(lambda s: call(s, name))
        self.reply(state)


class RevisionsHandler(WorkbenchHandler):
    """``GET workloads/NAME/revisions``: the endpoint's revisions, oldest first."""

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        revisions = await self.call(lambda s: s.rollout_history(name))
        self.reply({"revisions": revisions})


def _scale_request(body: Mapping[str, Any]) -> tuple[int | None, str | None]:
    """``{"replicas": N}`` and/or ``{"autoscale": "MIN:MAX"}`` (null turns autoscaling off)."""
    extra = [key for key in body if key not in ("replicas", "autoscale")]
    if extra or (body.get("replicas") is None and body.get("autoscale") is None):
        raise SpecError(
            'send {"replicas": N} or {"autoscale": "MIN:MAX"}, not ' + _keys(body),
            value=_keys(body),
            hint='e.g. {"replicas": 2} or {"autoscale": "1:4"}',
        )
    replicas, autoscale = body.get("replicas"), body.get("autoscale")
    if replicas is not None and (isinstance(replicas, bool) or not isinstance(replicas, int)):
        raise SpecError(
            f"replicas {shown(replicas)} must be a whole number", value=shown(replicas), hint="e.g. 2"
        )
    if autoscale is not None and not isinstance(autoscale, str):
        raise SpecError(
            f'autoscale {shown(autoscale)} must be text like "1:4"', value=shown(autoscale), hint='"MIN:MAX"'
        )
    return replicas, autoscale


class EndpointScaleHandler(WorkbenchHandler):
    """``POST workloads/NAME/endpoint-scale`` with ``{"replicas": N}`` or ``{"autoscale": "MIN:MAX"}``."""

    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        replicas, autoscale = _scale_request(self.json_object())
        workload = await self.call(lambda s: s.scale_endpoint(name, replicas=replicas, autoscale=autoscale))
        self.reply(record(workload))
