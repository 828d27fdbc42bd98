"""IPython magics for endpoints: ``%%serve`` serves the model a cell defines, ``%%rollout``
ships a new revision (``%rollout status|history|undo|promote NAME``), ``%wb predict`` calls one.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from IPython.core.magic import Magics, line_cell_magic, magics_class

from .magics import WorkbenchCellError, kernel_session

if TYPE_CHECKING:
    from .service import Service

ROLLOUT_HELP = (
    "%%rollout NAME [--canary PERCENT] [--send a,b] [--model-uri URI] [--env K=V] (the cell: new model) | "
    "%rollout NAME --model-uri URI | %rollout status|history|undo|promote NAME [--to-revision N]"
)


def _one_line(exc: Exception) -> WorkbenchCellError:
    from .errors import WorkbenchError

    return WorkbenchCellError(f"workbench: {exc.one_line() if isinstance(exc, WorkbenchError) else exc}")


def _summary(service: Service, name: str, state: dict[str, Any]) -> str:
    workload = service.get(name)
    canary = ""
    if state.get("canary"):
        traffic = state.get("traffic") or {}
        canary = f", canary revision {state['canary']} at {traffic.get(str(state['canary']), '?')}%"
    return (
        f"{workload.id} {state['phase']}: serving at {workload.info.get('url')} "
        f"(revision {state.get('revision')}{canary}, {state.get('ready', 0)}/{state.get('desired', '?')} "
        "replicas ready)"
    )


def predict_command(service: Service, words: list[str], user_ns: dict[str, Any]) -> Any:
    """``%wb predict NAME INPUTS [--v1]``: INPUTS is a kernel variable or a JSON literal."""
    from .errors import SpecError

    v1 = "--v1" in words
    words = [w for w in words if w != "--v1"]
    if len(words) != 2:
        raise SpecError(
            "%wb predict needs NAME and the inputs (a variable or a JSON array)",
            hint="e.g. %wb predict iris X_test[:3]  or  %wb predict iris [[5.1,3.5,1.4,0.2]]",
        )
    name, text = words
    if text in user_ns:
        inputs = user_ns[text]
    else:
        try:
            inputs = json.loads(text)
        except ValueError:
            raise SpecError(
                f"inputs {text[:80]!r} are neither a variable of this kernel nor JSON",
                value=text[:80],
                hint="define the variable first, or write a JSON array like [[1, 2]]",
            ) from None
    return service.predict(name, inputs, protocol="v1" if v1 else "v2")


@magics_class
class ServeMagics(Magics):
    """``%%serve`` and ``%%rollout``; they share the workbench service of ``%wb``."""

    @property
    def service(self) -> Service:
        from .magics import WorkbenchMagics

        magics = self.shell.magics_manager.registry.get("WorkbenchMagics") if self.shell else None
        if isinstance(magics, WorkbenchMagics):
            return magics.service
        from .service import Service

        return Service()

    @line_cell_magic
    def serve(self, line: str, cell: str | None = None) -> None:
        """Serve the model the cell defines (a ``kserve.Model`` subclass or ``predict(inputs)``)
        behind an endpoint, or (the line form) the MLflow model ``--model-uri models:/NAME/VERSION``
        names; returns once it answers.

        ``%%serve [--name NAME] [--replicas N | --autoscale MIN:MAX] [--model-uri URI] [--send a,b]``
        """
        from .errors import WorkbenchError
        from .options import ArgumentParser, HelpShown, add_spec_options, spec_fields, split_line

        parser = ArgumentParser(prog="%%serve", add_help=True)
        add_spec_options(parser, "serve", skip=("get",))
        parser.add_argument("--detach", action="store_true", help="return at once")
        service = self.service
        try:
            args = parser.parse_args(split_line(line, "%%serve"))
            raw = spec_fields(args, "serve")
            mlflow_model = str(raw.get("model_uri") or "").startswith(("models:/", "runs:/"))  # no pydantic
            if cell is None and not mlflow_model:
                raise WorkbenchCellError(
                    "workbench: %serve without a cell serves an MLflow model: give --model-uri "
                    "models:/NAME/VERSION, or write the model in the cell (%%serve)"
                )
            if cell is not None:
                raw["code"] = cell
            user_ns = self.shell.user_ns if self.shell is not None else {}
            sent = {name: user_ns[name] for name in raw.get("send", []) if name in user_ns}
            workload = service.launch(raw, inputs=sent, session=kernel_session(), cwd=os.getcwd())
        except HelpShown:
            return
        except WorkbenchError as exc:
            raise _one_line(exc) from None
        from .widgets import show_workload

        show_workload(service, workload)
        if args.detach:
            print(f"{workload.id} launched; `%rollout status {workload.id}` waits until it serves")
            return
        try:
            state = service.rollout_status(workload.id)
        except KeyboardInterrupt:
            final = service.cancel(workload.id)
            raise WorkbenchCellError(f"workbench: interrupted; {final.id} {final.status}") from None
        except WorkbenchError as exc:
            raise _one_line(exc) from None
        print(_summary(service, workload.id, state))
        print(
            f"  %wb predict {workload.id} X   ·   %%rollout {workload.id}   ·   %rollout undo {workload.id}"
        )

    @line_cell_magic
    def rollout(self, line: str, cell: str | None = None) -> None:
        """Ship a new revision of an endpoint, or watch, list, undo or promote its rollouts."""
        from .errors import SpecError, WorkbenchError
        from .options import ArgumentParser, HelpShown, add_spec_options, spec_fields, split_line
        from .spec import RevisionChange

        parser = ArgumentParser(prog="%rollout", add_help=True, description=ROLLOUT_HELP)
        parser.add_argument("words", nargs="+", metavar="ACTION|NAME")
        add_spec_options(parser, RevisionChange)
        parser.add_argument("--to-revision", type=int, default=None)
        parser.add_argument("--no-wait", action="store_true")
        service = self.service
        try:
            args = parser.parse_args(split_line(line, "%rollout"))
            words, wait = list(args.words), not args.no_wait
            if words[0] in ("status", "history", "undo", "promote"):
                if len(words) != 2 or (cell or "").strip():
                    raise SpecError(f"%rollout {words[0]} takes one endpoint name", hint=ROLLOUT_HELP)
                action, name = words
                if action == "history":
                    from . import render

                    rows = [("REVISION", "STATE", "MODEL", "CAUSE")]
                    rows += [(str(e["revision"]), str(e.get("state", "")), str(e.get("model_uri") or "-"),
                              str(e.get("cause") or "")) for e in service.rollout_history(name)]  # fmt: skip
                    print(render.columns(rows))
                    return
                if action == "status":
                    state = service.rollout_status(name, wait=wait)
                elif action == "undo":
                    state = service.undo(name, to_revision=args.to_revision, wait=wait)
                else:
                    state = service.promote(name, wait=wait)
            else:
                if len(words) != 1:
                    raise SpecError(
                        f"%rollout takes one endpoint name, not {' '.join(words)!r}", hint=ROLLOUT_HELP
                    )
                name = words[0]
                raw = spec_fields(args, RevisionChange)
                if (cell or "").strip():
                    raw["code"] = cell
                user_ns = self.shell.user_ns if self.shell is not None else {}
                sent = {n: user_ns[n] for n in raw.get("send", []) if n in user_ns}
                state = service.rollout(name, raw, inputs=sent, cwd=os.getcwd(), wait=wait)
        except HelpShown:
            return
        except WorkbenchError as exc:
            raise _one_line(exc) from None
        print(_summary(service, name, state))
