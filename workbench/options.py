"""Flags generated from the spec models, shared by the CLI and the magics.

Each spec field whose JSON Schema extra names an ``x-flag`` becomes one option; nested
models (``resources``) are walked, so ``--gpus`` fills ``resources.gpus``. Values are
passed to the spec models as typed, and the models do all parsing and checking: no flag
is defined or validated anywhere else.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any, NoReturn, get_origin

from pydantic import BaseModel

from .errors import SpecError
from .spec import MODELS


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser that raises :class:`SpecError` instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise SpecError(f"{self.prog}: {message}", hint=f"`{self.prog} --help` lists the options")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if status:
            raise SpecError(message or f"{self.prog}: bad arguments")
        raise _HelpShown(message)


class _HelpShown(Exception):
    """--help was printed; the caller stops quietly."""


HelpShown = _HelpShown


def _walk(model: type[BaseModel], prefix: str = "") -> Iterable[tuple[str, Any, dict[str, Any]]]:
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        annotation = field.annotation
        if "x-flag" in extra:
            yield prefix + name, annotation, extra
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _walk(annotation, f"{prefix}{name}.")


#: Extra names of a flag for one kind, where the usual name would mislead.
ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "dask": {"resources.gpus": ("--gpus-per-worker",), "resources.memory": ("--memory-per-worker",)},
    "train": {"resources.gpus": ("--gpus-per-node",)},
}


def add_spec_options(parser: argparse.ArgumentParser, kind: str, *, skip: Iterable[str] = ()) -> None:
    """Add one option per flagged field of ``kind``'s spec model (with the kind's aliases)."""
    skipped = set(skip)
    aliases = ALIASES.get(kind, {})
    for path, annotation, extra in _walk(MODELS[kind]):
        if path in skipped:
            continue
        kwargs: dict[str, Any] = {"dest": path, "help": extra.get("x-help"), "default": None}
        if extra.get("action") == "store_true":
            kwargs["action"] = "store_true"
        else:
            kwargs["metavar"] = extra.get("x-metavar") or path.rsplit(".", 1)[-1].upper()
            if get_origin(annotation) in (dict, list):
                kwargs["action"] = "append"
        parser.add_argument(extra["x-flag"], *aliases.get(path, ()), **kwargs)


def spec_fields(namespace: argparse.Namespace, kind: str) -> dict[str, Any]:
    """The raw spec dict of the options that were given (absent ones stay unset)."""
    raw: dict[str, Any] = {"kind": kind}
    for path, _annotation, _extra in _walk(MODELS[kind]):
        value = getattr(namespace, path, None)
        if value is None or value is False:
            continue
        target = raw
        *parents, leaf = path.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return raw
