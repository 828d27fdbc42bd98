"""The ``workbench`` command line.

Exit codes: 0 success, 1 the workload failed (or timed out), 2 bad input, 130 interrupted.
Every error is one line on stderr: what is wrong, the bad value, what to do.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import WorkbenchError
from .options import ArgumentParser, HelpShown, add_spec_options, spec_fields, value_type
from .units import parse_duration

if TYPE_CHECKING:
    from .service import Service

OUTPUTS = ("table", "json", "yaml")


def _service() -> Service:
    from .service import Service

    return Service()


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="workbench",
        description="Launch and manage compute from notebooks: pods, Dask, training, batch runs.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=ArgumentParser)

    for command, kind, text in (
        ("run", "pod", "run a Python script as a pod workload"),
        ("train", "train", "run a PyTorch script on every rank of a distributed job (torchrun)"),
    ):
        run = sub.add_parser(command, help=text, description=f"{text}; arguments after -- go to the script.")
        run.add_argument("script", metavar="SCRIPT")
        add_spec_options(run, kind, skip=("send", "get"))
        run.add_argument("--detach", "-d", action="store_true", help="print the name and return at once")
        run.add_argument(
            "--dry-run",
            action="store_true",
            help="print the Kubernetes manifests instead (kubectl apply / GitOps)",
        )
        # --output is where the outputs go
        run.add_argument(
            "-o", "--format", choices=("yaml", "json"), default="yaml", help="format of --dry-run"
        )

    _notebook_parsers(sub)
    from . import cli_mlflow, cli_serve, cli_top

    cli_serve.add_parsers(sub, OUTPUTS)
    cli_top.add_parser(sub)
    cli_mlflow.add_parser(sub)  # workbench mlflow ui

    ls = sub.add_parser("ls", help="list workloads")
    ls.add_argument("-o", "--output", choices=OUTPUTS, default="table")
    ls.add_argument("--kind", choices=("pod", "dask", "train", "notebook", "serve"))
    ls.add_argument(
        "--status", action="append", choices=("pending", "running", "succeeded", "failed", "cancelled")
    )

    logs = sub.add_parser("logs", help="print a workload's output")
    logs.add_argument("name", metavar="NAME")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until it ends")

    describe = sub.add_parser("describe", help="show everything recorded about a workload")
    describe.add_argument("name", metavar="NAME")
    describe.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")

    wait = sub.add_parser("wait", help="wait until a workload ends; exit 1 if it failed")
    wait.add_argument("name", metavar="NAME")
    wait.add_argument(
        "--timeout", type=value_type(parse_duration, "duration"), help="seconds, or 30s, 5m, 2h"
    )

    cancel = sub.add_parser("cancel", help="stop a running workload")
    cancel.add_argument("name", metavar="NAME")

    rm = sub.add_parser("rm", help="delete a finished workload, its record and run directory")
    rm.add_argument("name", metavar="NAME")
    rm.add_argument("--force", action="store_true", help="cancel it first if it still runs")

    dask = sub.add_parser("dask", help="Dask clusters: up, scale, adapt, down, ls, address")
    dask_sub = dask.add_subparsers(
        dest="dask_command", required=True, metavar="ACTION", parser_class=ArgumentParser
    )
    up = dask_sub.add_parser("up", help="start a Dask cluster (it runs until `down` or its idle timeout)")
    add_spec_options(up, "dask", skip=("keep",))
    up.add_argument(
        "--dry-run",
        action="store_true",
        help="print the Kubernetes manifests instead (kubectl apply / GitOps)",
    )
    up.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml", help="format of --dry-run")
    for action, text in (
        ("scale", "set the number of workers"),
        ("adapt", "scale between MIN and MAX workers"),
    ):
        parser_ = dask_sub.add_parser(action, help=text)
        parser_.add_argument("name", metavar="NAME")
        parser_.add_argument("amount", metavar="N" if action == "scale" else "MIN:MAX")
    for action, text in (
        ("down", "stop a cluster and remove it"),
        ("address", "print the scheduler address"),
    ):
        dask_sub.add_parser(action, help=text).add_argument("name", metavar="NAME")
    dask_ls = dask_sub.add_parser("ls", help="list Dask clusters")
    dask_ls.add_argument("-o", "--output", choices=OUTPUTS, default="table")

    export = sub.add_parser("export", help="print a workload's Kubernetes manifests")
    export.add_argument("name", metavar="NAME")
    export.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")

    rbac = sub.add_parser("rbac", help="print the least-privilege RBAC objects the kubernetes backend needs")
    rbac.add_argument("--namespace", "-n", default=None, help="default: the configured namespace")
    rbac.add_argument("--service-account", default="workbench")
    rbac.add_argument(
        "--no-cluster", action="store_true", help="leave out the optional cluster-wide read rules"
    )

    doctor = sub.add_parser("doctor", help="check the configuration, the cluster, permissions and operators")
    doctor.add_argument(
        "--repair",
        action="store_true",
        help="move a corrupt store aside and rebuild the records of run directories the store does not know",
    )

    schema = sub.add_parser("schema", help="print the JSON Schema of a kind's spec")
    schema.add_argument("kind", choices=("pod", "dask", "train", "notebook"))
    return parser


def _at_least_one(text: str) -> int:
    if not (text.strip().isascii() and text.strip().isdigit()) or int(text) < 1:
        raise ValueError(f"{text!r} must be a whole number of runs, at least 1")
    return int(text)


def _notebook_parsers(sub: Any) -> None:
    notebook = sub.add_parser("notebook", help="run notebooks as reproducible papermill batch jobs")
    actions = notebook.add_subparsers(
        dest="notebook_command", required=True, metavar="ACTION", parser_class=ArgumentParser
    )
    run = actions.add_parser("run", help="execute a notebook with parameters (or a sweep of them)")
    run.add_argument("notebook", metavar="NB.ipynb")
    run.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"), dest="param"
    )
    run.add_argument("-f", "--parameters-file", metavar="PARAMS.yaml", help="parameters from a YAML mapping")
    run.add_argument("--sweep", action="append", default=[], metavar="NAME=V1,V2", help="a grid axis")
    runs = value_type(_at_least_one, "parallel")
    run.add_argument(
        "--parallel", type=runs, default=os.cpu_count() or 1, help="runs at once (default: the cores)"
    )
    run.add_argument("--sign", action="store_true", help="sign the provenance manifest (local Ed25519 key)")
    run.add_argument("--detach", "-d", action="store_true", help="print the name and return at once")
    add_spec_options(run, "notebook")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="print the Kubernetes manifests instead (a Job, or a CronJob with --schedule)",
    )
    # --output is where the runs go: the format of --dry-run is -o or --format here
    run.add_argument(
        "-o", "--format", choices=("yaml", "json"), default="yaml", dest="format", help="format of --dry-run"
    )
    rerun = actions.add_parser("rerun", help="re-execute a run from its snapshot with the same parameters")
    rerun.add_argument("run", metavar="RUN")
    rerun.add_argument("--sign", action="store_true", help="sign the provenance manifest")
    rerun.add_argument("--detach", "-d", action="store_true", help="print the name and return at once")
    verify = sub.add_parser("verify", help="re-check a notebook run against its provenance manifest")
    verify.add_argument("run", metavar="RUN", help="a workload name or a run directory")
    verify.add_argument(
        "--require-signature",
        action="store_true",
        help="fail unless the run is signed by this home's key (a run made with --sign)",
    )


def _notebook(service: Service, args: argparse.Namespace) -> int:
    from . import notebooks, render, tracking_sweeps
    from .errors import SpecError

    cwd = os.getcwd()
    if args.notebook_command == "rerun":
        raw, cwd_ = notebooks.rerun_fields(service.get(args.run))
        if args.sign:
            raw["sign"] = True
        return _follow_run(service, service.launch(raw, cwd=cwd_), args.detach)
    raw = spec_fields(args, "notebook")
    raw["notebook"] = args.notebook
    parameters: dict[str, Any] = {}
    if args.parameters_file:
        from pathlib import Path

        import yaml

        source = args.parameters_file
        try:
            loaded = yaml.safe_load(Path(source).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise SpecError(f"cannot read -f {source}: {exc}", value=source) from None
        if not isinstance(loaded, dict):
            raise SpecError(f"-f {args.parameters_file} must hold a mapping of NAME: VALUE")
        parameters.update(loaded)
    raw["parameters"] = {**parameters, **dict(args.param)}
    raw.update({"sign": True} if args.sign else {})
    if args.dry_run:  # a sweep prints every run's objects
        grid = notebooks.sweep_runs(raw, notebooks.sweep_grid(args.sweep)) if args.sweep else [raw]
        _print_docs([doc for one in grid for doc in service.dry_run(one, cwd=cwd)], args.format)
        return 0
    if not args.sweep:
        return _follow_run(service, service.launch(raw, cwd=cwd), args.detach)
    if args.detach:
        raise SpecError("--sweep waits for its runs to bound their parallelism; drop --detach")
    runs = notebooks.sweep_runs(raw, points := notebooks.sweep_grid(args.sweep))
    with tracking_sweeps.sweep_parent(service.store, raw, points):  # MLflow's parent run, when tracked
        done = notebooks.run_sweep(
            service,
            runs,
            parallel=args.parallel,
            cwd=cwd,
            on_launch=lambda w: print(f"workbench: {w.id} started", file=sys.stderr),
            on_start=lambda: print(
                f"workbench: sweeping {len(runs)} runs, {args.parallel} at a time", file=sys.stderr
            ),
        )
    print(render.columns(render.sweep_rows(done, [notebooks.run_metrics(w) for w in done])))
    return 0 if all(w.status == "succeeded" for w in done) else 1


def _follow_run(service: Service, workload: Any, detach: bool) -> int:
    if workload.spec.get("schedule"):  # runs until cancelled: never wait for it here
        print(workload.id)
        print(
            f"workbench: {workload.id} scheduled {workload.spec['schedule']!r} on {workload.backend}; "
            f"`workbench logs -f {workload.id}` follows its runs, `workbench cancel {workload.id}` ends it",
            file=sys.stderr,
        )
        return 0
    if detach:
        print(workload.id)
        return 0
    print(f"workbench: {workload.id} started on {workload.backend}", file=sys.stderr)
    try:
        _stream(service, workload.id)
        final = service.wait(workload.id)
    except KeyboardInterrupt:
        final = service.cancel(workload.id)
        print(f"\nworkbench: interrupted; {final.id} {final.status}", file=sys.stderr)
        return 130
    service.check(final)
    from .notebooks import run_directory

    print(f"workbench: {final.id} succeeded; run directory {run_directory(final)}", file=sys.stderr)
    return 0


def _verify(service: Service, run: str, require_signature: bool) -> int:
    from .notebooks import is_signed, trusted_fingerprint

    location = service.run_directory(run)
    problems = service.verify(run, require_signature=require_signature)
    for problem in problems:
        print(f"MISMATCH {problem}")
    if problems:
        print(f"workbench: {location} does not match its provenance manifest", file=sys.stderr)
        return 1
    matched = f"OK {location}: input, executed notebook and outputs match the manifest"
    if is_signed(location):  # verified: signed by this home's key
        print(f"{matched}, signed by this home's key {trusted_fingerprint(service.settings.home)}")
    else:
        print(
            f"{matched} (unsigned: the hashes match, which proves integrity only, "
            "not who made the run; use --sign)"
        )
    return 0


def _stream(service: Service, name: str) -> None:
    for chunk in service.logs(name, follow=True):
        sys.stdout.write(chunk)
        sys.stdout.flush()


def _print_docs(docs: list[dict[str, Any]], output: str) -> None:
    from . import render

    if output == "json":
        print(
            render.as_json(docs[0] if len(docs) == 1 else {"apiVersion": "v1", "kind": "List", "items": docs})
        )
    else:
        print(render.as_yaml_docs(docs), end="")


def _run(args: argparse.Namespace, script_args: list[str]) -> int:
    service = _service()
    raw = spec_fields(args, "pod" if args.command == "run" else "train")
    raw.update(script=args.script, args=script_args)
    if args.dry_run:
        _print_docs(service.dry_run(raw, cwd=os.getcwd()), args.format)
        return 0
    return _follow_run(service, service.launch(raw, cwd=os.getcwd()), args.detach)


def _dask(service: Service, args: argparse.Namespace) -> int:
    from . import render
    from .spec import check_adapt, check_workers

    action = args.dask_command
    if action == "up":
        if args.dry_run:
            _print_docs(service.dry_run(spec_fields(args, "dask") | {"keep": True}), args.output)
            return 0
        workload = service.launch(spec_fields(args, "dask") | {"keep": True}, cwd=os.getcwd())
        workload = service.dask_address(workload.id)
        print(f"{workload.id} {workload.info['address']} {workload.info.get('dashboard') or ''}".rstrip())
    elif action == "ls":
        workloads = service.list(kind="dask")
        if args.output != "table":
            data = [w.to_dict() for w in workloads]
            print(render.as_json(data) if args.output == "json" else render.as_yaml(data), end="\n")
            return 0
        rows = [("NAME", "BACKEND", "STATUS", "AGE", "WORKERS", "ADDRESS", "DASHBOARD")]
        for w in workloads:
            workers = w.info.get("requested_workers", w.spec.get("workers"))
            if w.info.get("adapt"):
                workers = "{}:{}".format(*w.info["adapt"])
            rows.append((w.id, w.backend, w.status, render.age(time.time() - w.created), str(workers),
                         w.info.get("address") or "-", w.info.get("dashboard") or "-"))  # fmt: skip
        print(render.columns(rows))
    elif action == "address":
        print(service.dask_address(args.name).info["address"])
    elif action == "scale":
        workers = check_workers(args.amount)
        print(f"{service.scale(args.name, workers).id} scaling to {workers} workers")
    elif action == "adapt":
        bounds = check_adapt(args.amount)
        low, high = bounds.minimum, bounds.maximum
        print(f"{service.adapt(args.name, low, high).id} adapting between {low} and {high} workers")
    elif action == "down":
        service.delete(args.name, force=True)
        print(f"{args.name} stopped and removed")
    return 0


def _dispatch(args: argparse.Namespace, script_args: list[str]) -> int:
    from . import render

    if args.command in ("run", "train"):
        return _run(args, script_args)
    if args.command == "schema":
        from .spec import json_schema

        print(render.as_json(json_schema(args.kind)))
        return 0
    service = _service()
    if args.command == "rbac":
        _print_docs(service.rbac(args.namespace, args.service_account, cluster=not args.no_cluster), "yaml")
        return 0
    if args.command == "doctor":
        from .doctor import FAIL, repair, run_checks

        if args.repair:
            print("\n".join(repair(service.settings)))
            return 0
        checks = run_checks(service)
        width = max(len(c.what) for c in checks)
        for check in checks:
            print(f"[{check.level:>4}] {check.what.ljust(width)}  {check.detail}")
        return 1 if any(c.level == FAIL for c in checks) else 0
    if getattr(args, "handler", None) is not None:  # a command of its own module (cli_top, cli_mlflow)
        return int(args.handler(service, args))
    if args.command == "dask":
        return _dask(service, args)
    if args.command in ("serve", "rollout", "predict", "scale"):
        from .cli_serve import dispatch

        return dispatch(service, args, _print_docs)
    if args.command == "notebook":
        from .notebooks import skip_iri_format_checker

        skip_iri_format_checker()
        return _notebook(service, args)
    if args.command == "verify":
        return _verify(service, args.run, args.require_signature)
    if args.command == "export":
        _print_docs(service.export(args.name), args.output)
        return 0
    if args.command == "ls":
        workloads = service.list(kind=args.kind, status=args.status)
        if args.output == "table":
            print(render.table(workloads))
        else:
            data = [w.to_dict() for w in workloads]
            print(render.as_json(data) if args.output == "json" else render.as_yaml(data), end="\n")
    elif args.command == "logs":
        for chunk in service.logs(args.name, follow=args.follow):
            sys.stdout.write(chunk)
            sys.stdout.flush()
        if args.follow:  # followed to its end: end as the workload did (exit 1 when it failed)
            service.check(service.get(args.name))
    elif args.command == "describe":
        workload = service.get(args.name)
        text = render.describe(workload, service.usage(workload.id), args.output)
        print(text, end="" if text.endswith("\n") else "\n")
    elif args.command == "wait":
        service.check(service.wait(args.name, timeout=args.timeout))
    elif args.command == "cancel":
        workload = service.cancel(args.name)
        print(f"{workload.id} {workload.status}")
    elif args.command == "rm":
        service.delete(args.name, force=args.force)
        print(f"{args.name} deleted")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``workbench`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    script_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, script_args = argv[:cut], argv[cut + 1 :]
    try:
        args = build_parser().parse_args(argv)
        return _dispatch(args, script_args)
    except HelpShown:
        return 0
    except WorkbenchError as exc:
        print(f"workbench: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
