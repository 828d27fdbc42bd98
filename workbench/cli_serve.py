"""The endpoint commands of the ``workbench`` CLI: serve, rollout, predict, scale."""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING, Any

from .errors import SpecError
from .options import add_spec_options, spec_fields
from .spec import RevisionChange
from .spec_serve import is_mlflow_uri

if TYPE_CHECKING:
    from .service import Service

ROLLOUT_ACTIONS = ("status", "history", "undo", "promote")
ROLLOUT_USAGE = (
    "workbench rollout NAME [FILE] [--model-uri URI] [--env K=V] [--image I] [--canary PERCENT] | "
    "workbench rollout status|history|undo|promote NAME [--to-revision N]"
)


def add_parsers(sub: Any, output_choices: tuple[str, ...]) -> None:
    serve = sub.add_parser(
        "serve",
        help="serve a model file behind an endpoint (Open Inference Protocol v2 and KServe V1)",
        description="Serve FILE, which defines a kserve.Model subclass or predict(inputs), "
        "behind a stable endpoint; waits until it answers.",
    )
    serve.add_argument(
        "script", metavar="FILE", nargs="?", help="omit it with --model-uri models:/NAME/VERSION"
    )
    add_spec_options(serve, "serve", skip=("send", "get"))
    serve.add_argument("--detach", "-d", action="store_true", help="print the name and return at once")
    serve.add_argument("--dry-run", action="store_true", help="print the Kubernetes manifests instead")
    serve.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml", help="format of --dry-run")

    rollout = sub.add_parser(
        "rollout",
        help="ship a new revision of an endpoint; status, history, undo, promote",
        description=ROLLOUT_USAGE,
    )
    rollout.add_argument("words", nargs="+", metavar="ACTION|NAME")
    add_spec_options(rollout, RevisionChange, skip=("send",))
    rollout.add_argument("--to-revision", type=int, default=None, help="undo: the revision to go back to")
    rollout.add_argument("--no-wait", action="store_true", help="return at once; `rollout status` watches")
    rollout.add_argument("--timeout", default=None, help="give up waiting after this long, e.g. 5m")

    predict = sub.add_parser("predict", help="send inputs to an endpoint and print its answer")
    predict.add_argument("name", metavar="NAME")
    predict.add_argument(
        "data", metavar="JSON", help="the inputs: a JSON array, or an object of named arrays"
    )
    predict.add_argument("--v1", action="store_true", help="use KServe's V1 protocol instead of v2")

    scale = sub.add_parser("scale", help="set an endpoint's replicas, or let load scale them")
    scale.add_argument("name", metavar="NAME")
    group = scale.add_mutually_exclusive_group(required=True)
    group.add_argument("--replicas", type=int, default=None, metavar="N")
    group.add_argument("--autoscale", default=None, metavar="MIN:MAX")


def _print_state(name: str, state: dict[str, Any]) -> None:
    revision = f"revision {state.get('revision')}"
    if state.get("canary"):
        traffic = state.get("traffic") or {}
        revision += f", canary revision {state['canary']} at {traffic.get(str(state['canary']), '?')}%"
    ready = f"{state.get('ready', 0)}/{state.get('desired', '?')} replicas ready"
    print(f"{name} {state['phase']}: {revision}, {ready}")


def _wait_timeout(text: str | None) -> float | None:
    if text is None:
        return None
    from .units import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise SpecError(f"--timeout {text!r}: {exc}", value=text, hint="e.g. --timeout 5m") from None


def dispatch(service: Service, args: argparse.Namespace, print_docs: Any) -> int:
    """Run one endpoint command."""
    from . import render

    if args.command == "serve":
        raw = spec_fields(args, "serve")
        if args.script is None and not is_mlflow_uri(raw.get("model_uri")):
            raise SpecError(
                "workbench serve needs FILE, a .py that defines the model, or an MLflow model",
                hint="e.g. workbench serve model.py, or workbench serve --model-uri models:/NAME/VERSION",
            )
        if args.script is not None:
            raw["script"] = args.script
        if args.dry_run:
            print_docs(service.dry_run(raw, cwd=os.getcwd()), args.output)
            return 0
        workload = service.launch(raw, cwd=os.getcwd())
        if args.detach:
            print(f"{workload.id} launched; `workbench rollout status {workload.id}` waits until it serves")
            return 0
        state = service.rollout_status(workload.id)
        workload = service.get(workload.id)
        print(f"{workload.id} serving at {workload.info.get('url')}")
        _print_state(workload.id, state)
        return 0
    if args.command == "rollout":
        return _rollout(service, args)
    if args.command == "predict":
        try:
            data = json.loads(args.data)
        except ValueError as exc:
            raise SpecError(
                f"inputs {args.data[:80]!r} are not JSON ({exc})",
                value=args.data[:80],
                hint="e.g. '[[5.1, 3.5, 1.4, 0.2]]'",
            ) from None
        answer = service.predict(args.name, data, protocol="v1" if args.v1 else "v2")
        if isinstance(answer, dict):
            print(render.as_json({k: v.tolist() for k, v in answer.items()}))
        else:
            print(render.as_json(answer.tolist()))
        return 0
    if args.command == "scale":
        workload = service.scale_endpoint(args.name, replicas=args.replicas, autoscale=args.autoscale)
        how = f"{args.replicas} replicas" if args.replicas is not None else f"autoscaling {args.autoscale}"
        print(f"{workload.id} scaling to {how}")
        return 0
    return 2


def _rollout(service: Service, args: argparse.Namespace) -> int:
    from . import render

    words = list(args.words)
    wait = not args.no_wait
    timeout = _wait_timeout(args.timeout)
    if words[0] in ROLLOUT_ACTIONS:
        if len(words) != 2:
            raise SpecError(f"rollout {words[0]} takes one endpoint name", hint=ROLLOUT_USAGE)
        action, name = words
        if action == "history":
            rows = [("REVISION", "CREATED", "STATE", "MODEL", "CAUSE")]
            import time

            for entry in service.rollout_history(name):
                created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.get("created") or 0))
                rows.append(
                    (
                        str(entry["revision"]),
                        created,
                        str(entry.get("state", "")),
                        entry.get("model_uri") or "-",
                        entry.get("cause") or "",
                    )
                )
            print(render.columns(rows))
            return 0
        if action == "status":
            state = service.rollout_status(name, wait=wait, timeout=timeout)
        elif action == "undo":
            state = service.undo(name, to_revision=args.to_revision, wait=wait, timeout=timeout)
        else:
            state = service.promote(name, wait=wait, timeout=timeout)
        _print_state(name, state)
        return 0
    if len(words) > 2:
        raise SpecError(
            f"rollout takes NAME and at most one FILE, not {' '.join(words)!r}", hint=ROLLOUT_USAGE
        )
    raw = spec_fields(args, RevisionChange)
    if len(words) == 2:
        raw["script"] = words[1]
    state = service.rollout(words[0], raw, cwd=os.getcwd(), wait=wait, timeout=timeout)
    _print_state(words[0], state)
    return 0
