"""IPython magics: ``%%pod`` runs a cell as a workload; ``%wb`` manages workloads.

Loading the extension registers the magics and nothing else: pydantic, the store and the
backends load on the first magic call, so ``%load_ext workbench`` stays cheap.
"""

from __future__ import annotations

import os
import shlex
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


WB_USAGE = "%wb ls | logs NAME [-f] | describe NAME | cancel NAME | rm NAME [--force] | get NAME"


@magics_class
class WorkbenchMagics(Magics):
    """``%%pod`` and ``%wb``."""

    _service: Service | None = None

    @property
    def service(self) -> Service:
        if self._service is None:
            from .service import Service

            self._service = Service()
        return self._service

    def _fail(self, exc: Exception) -> WorkbenchCellError:
        from .errors import WorkbenchError

        text = exc.one_line() if isinstance(exc, WorkbenchError) else str(exc)
        return WorkbenchCellError(f"workbench: {text}")

    @cell_magic
    def pod(self, line: str, cell: str) -> None:
        """Run the cell in its own process (or pod): ``%%pod [--gpus N] [--send a,b] [--get c]``."""
        from .errors import WorkbenchError
        from .options import ArgumentParser, HelpShown, add_spec_options, spec_fields

        parser = ArgumentParser(prog="%%pod", add_help=True)
        add_spec_options(parser, "pod")
        parser.add_argument("--detach", action="store_true", help="return at once; see %%wb logs")
        try:
            args = parser.parse_args(shlex.split(line))
            raw = spec_fields(args, "pod")
            raw["code"] = cell
            user_ns = self.shell.user_ns if self.shell is not None else {}
            sent = {name: user_ns[name] for name in raw.get("send", []) if name in user_ns}
            workload = self.service.launch(raw, inputs=sent, session=kernel_session(), cwd=os.getcwd())
        except HelpShown:
            return
        except WorkbenchError as exc:
            raise self._fail(exc) from None
        if args.detach:
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
    def wb(self, line: str) -> Any:
        """Manage workloads: ``%wb ls | logs NAME [-f] | describe NAME | cancel NAME | rm NAME``."""
        from . import render
        from .errors import SpecError, WorkbenchError

        words = shlex.split(line)
        if not words:
            print(WB_USAGE)
            return None
        command, rest = words[0], words[1:]
        service = self.service
        try:
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
                print(render.describe(service.get(name)), end="")
            elif command == "cancel":
                workload = service.cancel(name)
                print(f"{workload.id} {workload.status}")
            elif command == "rm":
                service.delete(name, force="--force" in rest)
                print(f"{name} deleted")
            elif command == "get":
                return service.results(name)
            else:
                raise SpecError(
                    f"unknown %wb command {command!r}",
                    value=command,
                    hint="use ls, logs, describe, cancel, rm or get",
                )
        except WorkbenchError as exc:
            raise self._fail(exc) from None
        return None


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magics(WorkbenchMagics)
