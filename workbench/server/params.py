"""``GET notebook-parameters?path=REL``: what the batch dialog pre-fills from a notebook.

The answer is ``{"path", "name", "parameters": [{"name", "type", "default", "help"}]}``: the
notebook's declared parameters (papermill's inspection of its ``parameters`` cell; none when it
has no such cell) and a free workload name made from the file name. The path is confined to the
server's root directory as the files of a spec are (:mod:`.paths`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..errors import NotFound, SpecError
from ..notebooks import inspected_parameters
from ..units import MAX_NAME
from .base import WorkbenchHandler
from .paths import check_form, confine

if TYPE_CHECKING:
    from ..service import Service

_NOT_NAME = re.compile(r"[^a-z0-9]+")
_HINT = "give the path of an .ipynb inside the Jupyter root, as the file browser shows it"


def base_name(path: str) -> str:
    """A workload name made from a notebook's file name: ``Train Model v2.ipynb`` → ``train-model-v2``."""
    stem = _NOT_NAME.sub("-", Path(path).stem.lower()).strip("-")
    return stem[: MAX_NAME - 4].strip("-") or "notebook"


def free_name(service: Service, base: str) -> str:
    """``base``, or ``base-2``, ``base-3``… : the first no workload has."""
    for number in range(1, 100):
        candidate = base if number == 1 else f"{base}-{number}"
        try:
            service.store.get(candidate)
        except NotFound:
            return candidate
    return f"{base}-{len(service.store.list())}"


def notebook_parameters(data: bytes, where: str) -> list[dict[str, str]]:
    """The ``parameters`` cell of a notebook as a form shows it: ``[{"name", "type", "default",
    "help"}]`` in the cell's order (``type``: int, float, str, bool, list, dict when known, else
    what papermill infers, e.g. ``None``; ``default``: the Python source of the default). Empty
    when the notebook has no ``parameters`` cell. A notebook naming no kernel is read as python3.

    Raises:
        SpecError: not a valid notebook.
    """
    try:
        meta = json.loads(data.decode("utf-8")).get("metadata")
        kernel = None if (meta or {}).get("kernelspec", {}).get("name") else "python3"
    except (ValueError, AttributeError, TypeError):
        kernel = None  # the inspection says what is wrong
    return [
        {"name": name, "type": known or inferred, "default": default, "help": help_text}
        for name, known, inferred, default, help_text in inspected_parameters(data, kernel, where)
    ]


def _read(root: Path, rel: str) -> bytes:
    path = root / rel
    if path.suffix != ".ipynb":
        raise SpecError(f"path {rel!r} is not a notebook (.ipynb)", value=rel, hint=_HINT)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"no notebook {rel!r} in the Jupyter root", value=rel, hint=_HINT) from None
    except OSError as exc:
        raise SpecError(f"cannot read notebook {rel!r}: {exc.strerror}", value=rel, hint=_HINT) from None


def _answer(service: Service, root: Path, rel: str) -> dict[str, Any]:
    parameters = notebook_parameters(_read(root, rel), rel)
    return {"path": rel, "name": free_name(service, base_name(rel)), "parameters": parameters}


class NotebookParametersHandler(WorkbenchHandler):
    """``GET notebook-parameters?path=REL`` → ``{"path", "name", "parameters": [...]}``."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        values = self.request.query_arguments.get("path") or [b""]
        try:  # as sent: get_query_argument would strip blanks and blank out control characters
            raw = values[-1].decode("utf-8")
        except UnicodeDecodeError:
            raise SpecError("path is not UTF-8 text", hint=_HINT) from None
        if not raw:
            raise SpecError("give the notebook as ?path=REL", hint=_HINT)
        check_form(raw, "path")
        if "://" in raw:
            raise SpecError(f"path {raw!r} is a URL; give a path in the Jupyter root", value=raw, hint=_HINT)
        root = self.root_dir
        rel = confine(raw, root, "path")
        self.reply(await self.call(lambda s: _answer(s, root, rel)))
