"""IPython magics: ``%%pod`` runs a cell as a workload; ``%wb`` manages workloads.

Loading the extension registers the magics and a display formatter for ``Workload`` (its live
widget as a cell's value) and nothing else: pydantic, the store and the backends load on the
first magic call, so ``%load_ext workbench`` stays cheap.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

if TYPE_CHECKING:
    from .service import Service
    from .store import Workload


class WorkbenchCellError(Exception):
    """Shown by IPython as one line (no traceback of our internals); fails the cell."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31m{self.text}\x1b[0m"]


def kernel_session() -> str | None:
    """The id of the kernel this runs in, from its connection file."""
    try:
        from ipykernel.connect import get_connection_file

        name = os.path.basename(get_connection_file())
    except Exception:
        return None
    return name.removeprefix("kernel-").removesuffix(".json") or None


WB_USAGE = (
    "%wb ls | logs NAME [-f] | describe NAME | cancel NAME | rm NAME [--force] | get NAME"
    " | scale NAME N | adapt NAME MIN:MAX | predict NAME INPUTS"
)
WB_COMMANDS = ("ls", "logs", "describe", "cancel", "rm", "get", "scale", "adapt", "predict")
_SHUTDOWN_HOOKED: set[str] = set()


def close_kernel_scoped(service: Service, session: str, shell: Any) -> None:
    """At kernel exit: stop this kernel's Dask clusters not marked --keep, unless it restarts.

    A kernel that is shut down (not restarted) has answered a shutdown request with
    ``restart: false``; a restarted or killed kernel leaves its clusters to be found again.
    """
    kernel = getattr(shell, "kernel", None)
    message = getattr(kernel, "_shutdown_message", None) or {}
    if message.get("content", {}).get("restart", True):
        return
    service.close_session(session)


@magics_class
class WorkbenchMagics(Magics):
    """``%%pod``, ``%%train``, ``%batch``, ``%dask`` and ``%wb``."""

    _service: Service | None = None

    @property
    def service(self) -> Service:
        if self._service is None:
            from .service import Service

            self._service = Service()
        return self._service

    def _show(self, workload: Workload) -> None:
        """The launch's live widget, where the front end renders widgets (workbench.widgets)."""
        from .widgets import show_workload

        show_workload(self.service, workload)

    def workload_bundle(self, workload: Workload) -> dict[str, Any] | None:
        """A ``Workload`` as a cell's value: its live widget, or None for IPython's usual text."""
        from .widgets import workload_bundle
        from .widgets_mode import wanted

        formatter = self.shell.display_formatter if self.shell is not None else None
        if formatter is None or not wanted():
            return None
        text = formatter.formatters["text/plain"](workload)
        return workload_bundle(self.service, workload, text)

    def _fail(self, exc: Exception) -> WorkbenchCellError:
        from .errors import WorkbenchError

        text = exc.one_line() if isinstance(exc, WorkbenchError) else str(exc)
        return WorkbenchCellError(f"workbench: {text}")

    @cell_magic
    def pod(self, line: str, cell: str) -> None:
        """Run the cell in its own process (or pod): ``%%pod [--gpus N] [--send a,b] [--get c]``."""
        self._run_cell("pod", line, cell)

    @cell_magic
    def train(self, line: str, cell: str) -> None:
        """Run the cell on every rank of a distributed PyTorch job.

        ``%%train [--nodes N] [--procs-per-node P] [--gpus-per-node G] [--max-restarts K]
        [--send a,b] [--get c]``; every rank's output streams in, prefixed with its rank, and
        ``--get`` brings back rank 0's variables.
        """
        self._run_cell("train", line, cell)

    def _run_cell(self, kind: str, line: str, cell: str) -> None:
        from .agent_client import AgentError, run_cell
        from .errors import WorkbenchError

        user_ns = self.shell.user_ns if self.shell is not None else {}
        if self._service is None:  # the agent has pydantic and the store loaded: this kernel need not
            try:
                done = run_cell(
                    kind, line, cell, user_ns=user_ns, session=kernel_session(), on_launch=self._launched
                )
            except AgentError as exc:
                raise WorkbenchCellError(f"workbench: {exc}") from None
            except WorkbenchError as exc:
                raise self._fail(exc) from None
            if done:
                return
        self._run_here(kind, line, cell, user_ns)

    def _launched(self, record: dict[str, Any]) -> None:
        """A launch made by the agent: its widget, where widgets are wanted."""
        from .widgets_mode import wanted

        if wanted():
            from .store import Workload

            self._show(Workload(**record))

    def _run_here(self, kind: str, line: str, cell: str, user_ns: dict[str, Any]) -> None:
        from .errors import WorkbenchError
        from .options import HelpShown, cell_fields

        try:
            raw, detach = cell_fields(kind, line, cell)
            sent = {name: user_ns[name] for name in raw.get("send", []) if name in user_ns}
            workload = self.service.launch(raw, inputs=sent, session=kernel_session(), cwd=os.getcwd())
        except HelpShown:
            return
        except WorkbenchError as exc:
            raise self._fail(exc) from None
        self._show(workload)
        if detach:
            print(f"{workload.id} launched; `%wb logs {workload.id}` to follow")
            return
        self._follow(workload, user_ns)

    def _follow(self, workload: Workload, user_ns: dict[str, Any]) -> None:
        from .errors import WorkbenchError

        service = self.service
        try:
            for chunk in service.logs(workload.id, follow=True):
                sys.stdout.write(chunk)
                sys.stdout.flush()
            final = service.wait(workload.id)
        except KeyboardInterrupt:
            final = service.cancel(workload.id)
            raise WorkbenchCellError(f"workbench: interrupted; {final.id} {final.status}") from None
        try:
            service.check(final)
            results = service.results(final.id)
        except WorkbenchError as exc:
            raise self._fail(exc) from None
        user_ns.update(results)

    @line_magic
    def batch(self, line: str) -> None:
        """Run a notebook as a papermill batch job and stream its log.

        ``%batch NB.ipynb [-p NAME VALUE]… [--strict] [--kernel K] [--sign] [--detach] [flags]``
        """
        from .errors import WorkbenchError
        from .options import ArgumentParser, HelpShown, add_spec_options, spec_fields, split_line

        parser = ArgumentParser(prog="%batch", add_help=True)
        parser.add_argument("notebook", metavar="NB.ipynb")
        parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], dest="param")
        parser.add_argument("--sign", action="store_true", help="sign the provenance manifest")
        parser.add_argument("--detach", action="store_true", help="return at once; see %%wb logs")
        add_spec_options(parser, "notebook")
        try:
            args = parser.parse_args(split_line(line, "%batch"))
            raw = spec_fields(args, "notebook")
            raw.update(notebook=args.notebook, parameters=dict(args.param))
            if args.sign:
                raw["sign"] = True
            workload = self.service.launch(raw, session=kernel_session(), cwd=os.getcwd())
        except HelpShown:
            return
        except WorkbenchError as exc:
            raise self._fail(exc) from None
        self._show(workload)
        if workload.spec.get("schedule"):  # runs until cancelled: never wait for it here
            print(
                f"{workload.id} scheduled {workload.spec['schedule']!r}; `%wb logs {workload.id}` shows "
                f"the latest run, `%wb cancel {workload.id}` ends the schedule"
            )
            return
        if args.detach:
            print(f"{workload.id} launched; `%wb logs {workload.id}` to follow")
            return
        self._follow(workload, {})  # the run's log ends with where the executed notebook is

    @line_magic
    def dask(self, line: str) -> Any:
        """Start (or connect to) a Dask cluster and return a connected ``distributed.Client``.

        ``client = %dask [--workers N] [--threads T] [--memory M] [--gpus-per-worker G]
        [--adapt MIN:MAX] [--name NAME] [--backend B] [--keep]``
        """
        from .errors import WorkbenchError
        from .options import ArgumentParser, HelpShown, add_spec_options, spec_fields, split_line

        parser = ArgumentParser(prog="%dask", add_help=True)
        add_spec_options(parser, "dask")
        try:
            args = parser.parse_args(split_line(line, "%dask"))
            raw = spec_fields(args, "dask")
            service = self.service
            session = kernel_session()
            workload, started = service.dask_cluster(raw, session=session, cwd=os.getcwd())
            verb = "started" if started else "connected to"
            if started and session and self.shell is not None and session not in _SHUTDOWN_HOOKED:
                import atexit

                atexit.register(close_kernel_scoped, service, session, self.shell)
                _SHUTDOWN_HOOKED.add(session)
            client = service.dask_client(workload.id)
            workload = service.get(workload.id)
        except HelpShown:
            return None
        except WorkbenchError as exc:
            raise self._fail(exc) from None
        self._show(workload)
        workers = len(client.scheduler_info().get("workers", {}))
        scope = (
            "kept after the kernel ends" if workload.spec.get("keep") else "closed when the kernel shuts down"
        )
        print(
            f"Dask cluster {workload.id} {verb} on {workload.backend}: {workers} workers, "
            f"scheduler {workload.info.get('address')}, dashboard {workload.info.get('dashboard')} ({scope})"
        )
        return client

    @line_magic
    def wb(self, line: str) -> Any:
        """Manage workloads: ``%wb ls | logs NAME [-f] | describe NAME | cancel NAME | rm NAME``."""
        from . import render
        from .errors import SpecError, WorkbenchError
        from .options import split_line
        from .spec import check_adapt, check_workers

        try:
            words = split_line(line, "%wb")
            if not words:
                print(WB_USAGE)
                return None
            command, rest = words[0], words[1:]
            if command not in WB_COMMANDS:
                raise SpecError(
                    f"unknown %wb command {command!r}",
                    value=command,
                    hint=f"use {', '.join(WB_COMMANDS[:-1])} or {WB_COMMANDS[-1]}: {WB_USAGE}",
                )
            service = self.service
            if command == "ls":
                print(render.table(service.list()))
                return None
            if not rest:
                raise SpecError(f"%wb {command} needs a workload name", hint="`%wb ls` lists them")
            name = rest[0]
            if command == "logs":
                follow = "-f" in rest or "--follow" in rest
                try:
                    for chunk in service.logs(name, follow=follow):
                        sys.stdout.write(chunk)
                        sys.stdout.flush()
                except KeyboardInterrupt:
                    pass
            elif command == "describe":
                workload = service.get(name)
                print(render.describe(workload, service.usage(workload.id)), end="")
            elif command == "cancel":
                workload = service.cancel(name)
                print(f"{workload.id} {workload.status}")
            elif command == "rm":
                service.delete(name, force="--force" in rest)
                print(f"{name} deleted")
            elif command == "get":
                return service.results(name)
            elif command == "predict":
                from .magics_serve import predict_command

                return predict_command(service, rest, self.shell.user_ns if self.shell else {})
            elif command == "scale":
                if len(rest) < 2:
                    raise SpecError(
                        "%wb scale needs NAME and a number of workers", hint="e.g. %wb scale my-cluster 4"
                    )
                workers = check_workers(rest[1])
                workload = service.scale(name, workers)
                print(f"{workload.id} scaling to {workers} workers")
            elif command == "adapt":
                if len(rest) < 2:
                    raise SpecError("%wb adapt needs NAME and MIN:MAX", hint="e.g. %wb adapt my-cluster 1:8")
                bounds = check_adapt(rest[1])
                workload = service.adapt(name, bounds.minimum, bounds.maximum)
                print(f"{workload.id} adapting between {bounds.minimum} and {bounds.maximum} workers")
        except WorkbenchError as exc:
            raise self._fail(exc) from None
        return None


def load_ipython_extension(ipython: Any) -> None:
    from .magics_serve import ServeMagics

    magics = WorkbenchMagics(ipython)  # type: ignore[no-untyped-call]
    ipython.register_magics(magics)
    ipython.register_magics(ServeMagics)
    # a Workload displayed (a cell's value) shows its widget where widgets render; a printer that
    # returns None leaves IPython's usual text. By name: the store is not imported until it is used
    formatter = ipython.display_formatter.mimebundle_formatter
    formatter.for_type_by_name("workbench.store", "Workload", magics.workload_bundle)
