"""Flags generated from the spec models, shared by the CLI and the magics.

Each spec field whose JSON Schema extra names an ``x-flag`` becomes one option; nested
models (``resources``) are walked, so ``--gpus`` fills ``resources.gpus``. Values are
passed to the spec models as typed, and the models do all parsing and checking: no flag
is defined or validated anywhere else.
"""

from __future__ import annotations

import argparse
import functools
import re
import shlex
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, get_origin

from pydantic import BaseModel

from .errors import SpecError
from .spec import MODELS, split_names

#: What argparse takes for a value rather than an unknown option: a dash, then a digit
#: (``--memory -1Gi``, ``--cpu -.5``), so the spec models can say what is wrong with it.
_NEGATIVE = re.compile(r"^-\.?[0-9]")


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser that raises :class:`SpecError` instead of exiting.

    An argument that looks like a negative number or quantity is a value, never an option.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = _NEGATIVE

    def error(self, message: str) -> NoReturn:
        raise SpecError(f"{self.prog}: {message}", hint=f"`{self.prog} --help` lists the options")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if status:
            raise SpecError(message or f"{self.prog}: bad arguments")
        raise _HelpShown(message)


class _HelpShown(Exception):
    """--help was printed; the caller stops quietly."""


HelpShown = _HelpShown


def value_type(parse: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    """An argparse ``type`` from a checking function: its ValueError becomes the one-line error."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name
    return convert


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


def _model(kind: str | type[BaseModel]) -> type[BaseModel]:
    return MODELS[kind] if isinstance(kind, str) else kind


def add_spec_options(
    parser: argparse.ArgumentParser, kind: str | type[BaseModel], *, skip: Iterable[str] = ()
) -> None:
    """Add one option per flagged field of ``kind``'s spec model (with the kind's aliases), or
    of another model with flagged fields (a rollout's :class:`~workbench.spec.RevisionChange`)."""
    skipped = set(skip)
    aliases = ALIASES.get(kind, {}) if isinstance(kind, str) else {}
    for path, annotation, extra in _walk(_model(kind)):
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


def spec_fields(namespace: argparse.Namespace, kind: str | type[BaseModel]) -> dict[str, Any]:
    """The raw spec dict of the options that were given (absent ones stay unset); a kind's
    has its ``kind``."""
    raw: dict[str, Any] = {"kind": kind} if isinstance(kind, str) else {}
    for path, _annotation, extra in _walk(_model(kind)):
        value = getattr(namespace, path, None)
        if value is None or value is False:
            continue
        if extra.get("x-split") and isinstance(value, list):  # --send a,b --send c: ["a", "b", "c"]
            value = split_names(value) or value  # naming nothing (","): the spec model says so
        target = raw
        *parents, leaf = path.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return raw


def split_line(line: str, magic: str) -> list[str]:
    """The words of a magic's line, as a shell splits them.

    Raises:
        SpecError: the line cannot be split (an unclosed quote), naming the magic.
    """
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise SpecError(
            f"cannot read the arguments of {magic}: {str(exc).lower()} in {line.strip()!r}",
            value=line,
            hint="close the quote, or escape it with a backslash",
        ) from None


def cell_fields(kind: str, line: str, code: str) -> tuple[dict[str, Any], bool]:
    """The raw spec of ``%%kind line`` over ``code``, and whether it asked for ``--detach``.

    Raises:
        SpecError: a line that cannot be split or parsed; HelpShown: ``--help`` was printed.
    """
    args = cell_parser(kind).parse_args(split_line(line, f"%%{kind}"))
    raw = spec_fields(args, kind)
    raw["code"] = code
    return raw, bool(args.detach)


@functools.cache
def cell_parser(kind: str) -> ArgumentParser:
    """The flags of ``%%pod`` or ``%%train``: built once per kernel (argparse takes ~2 ms to build)."""
    parser = ArgumentParser(prog=f"%%{kind}", add_help=True)
    add_spec_options(parser, kind)
    parser.add_argument("--detach", action="store_true", help="return at once; see %%wb logs")
    return parser
