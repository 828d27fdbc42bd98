"""A static check that a cell or file defines a servable model, without running it.

A ``serve`` workload's code must define, at its top level, either a ``kserve.Model``
subclass or a plain ``predict(inputs)`` function (see :mod:`workbench.runtime.serve_model`).
Launching code that defines neither would start replicas that can only fail, so the service
refuses it first, from the syntax tree alone: nothing is imported or executed here, which
keeps the check cheap in the kernel and safe on code that is not ours to run yet.
"""

from __future__ import annotations

import ast

#: Base classes of KServe's model hierarchy that a subclass may name directly.
_MODEL_BASES = frozenset({"Model", "InferenceModel", "BaseKServeModel"})


def model_problem(source: str, filename: str) -> str | None:
    """Say, in one line, why ``source`` defines no model; ``None`` when it defines one.

    A model is a top-level class whose bases name ``Model`` (``kserve.Model``, or ``Model``
    imported from kserve under any alias), or a top-level ``predict`` function (also
    ``predict = ...`` or an imported ``predict``).
    Statements nested in a top-level ``if``/``try``/``with`` count as top level.

    Args:
        source: the code of the cell or file.
        filename: how the user names it (``serve.py``, ``cell``), used in the message.
    """
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        where = f"{filename}, line {exc.lineno}" if exc.lineno else filename
        return f"{where}: {exc.msg}"
    except ValueError as exc:  # null bytes on Pythons that do not raise SyntaxError for them
        return f"{filename}: {exc}"
    bases = set(_MODEL_BASES)
    for statement in _top_level(tree.body):
        if isinstance(statement, ast.ClassDef):
            if any(_names_model(base, bases) for base in statement.bases):
                return None
        elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if statement.name == "predict":
                return None
        elif isinstance(statement, ast.ImportFrom):
            for alias in statement.names:
                if alias.name in _MODEL_BASES and alias.asname:
                    bases.add(alias.asname)
                if (alias.asname or alias.name) == "predict":
                    return None
        elif _assigns_predict(statement):
            return None
    return f"{filename} defines no model: add a kserve.Model subclass or a predict(inputs) function"


def _top_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """The statements of ``body`` in order, with those of compound non-scope blocks spliced in."""
    found: list[ast.stmt] = []
    for statement in body:
        found.append(statement)
        if isinstance(statement, ast.If):
            found.extend(_top_level(statement.body + statement.orelse))
        elif isinstance(statement, ast.Try):
            handlers = [line for handler in statement.handlers for line in handler.body]
            found.extend(_top_level(statement.body + handlers + statement.orelse + statement.finalbody))
        elif isinstance(statement, (ast.With, ast.AsyncWith)):
            found.extend(_top_level(statement.body))
    return found


def _names_model(base: ast.expr, names: set[str]) -> bool:
    """Whether a base-class expression names a model class (``Model``, ``kserve.Model``...)."""
    if isinstance(base, ast.Subscript):  # a generic alias, Model[...]
        base = base.value
    if isinstance(base, ast.Name):
        if base.id in names:
            return True
    elif isinstance(base, ast.Attribute):
        return base.attr in _MODEL_BASES
    return False


def _assigns_predict(statement: ast.stmt) -> bool:
    if isinstance(statement, ast.Assign):
        targets = statement.targets
    elif isinstance(statement, (ast.AnnAssign, ast.AugAssign)):
        targets = [statement.target]
    else:
        return False
    return any(isinstance(target, ast.Name) and target.id == "predict" for target in targets)
