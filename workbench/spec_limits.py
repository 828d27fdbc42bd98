"""The limits every spec keeps and the names a spec may not set, whatever front end it comes from.

Limits: sizes of code, environment, parameters, labels, other text and whole specs; no NUL
byte or broken text anywhere; no nesting deeper than :data:`MAX_DEPTH`. The REST API also
refuses a request body over :data:`MAX_SPEC_BYTES` before it parses it.

Reserved names: environment variables and label keys that workbench (or torchrun, the Job
controller, Kueue, the Dask and Kubeflow operators) sets itself. A value from a spec would
override the GPU grant, the runtime's paths, the ranks of a training job or the labels the
backend finds its objects by, so the spec models refuse them for every kind and backend.

The helpers at the end keep an error about a huge value short.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from .units import format_bytes

# -- limits ------------------------------------------------------------------------------------
#: Most UTF-8 bytes of a cell body (``code``).
MAX_CODE_BYTES = 1024 * 1024
#: Most UTF-8 bytes of one environment variable's value.
MAX_ENV_VALUE_BYTES = 32 * 1024
#: Most bytes of the whole environment (``NAME=VALUE`` of every ``--env``).
MAX_ENV_BYTES = 256 * 1024
#: Most bytes of a notebook's parameters, written as JSON.
MAX_PARAMETERS_BYTES = 256 * 1024
#: Most labels (and most node-selector entries).
MAX_LABELS = 64
#: Most characters of any other single text field (a name, a path, an image, a kernel…).
MAX_TEXT = 4096
#: Most levels of nesting in a spec, the spec itself being the first (lists and mappings).
MAX_DEPTH = 32
#: Most bytes of a whole spec written as JSON; the REST API refuses a longer request body.
MAX_SPEC_BYTES = 4 * 1024 * 1024
#: Most workers of a Dask cluster, however it is scaled (spec, CLI, magics, REST, Python).
MAX_WORKERS = 1000
#: Fields whose text is bounded by a limit of their own instead of :data:`MAX_TEXT`.
LONG_TEXT = frozenset({"code"})

# -- names workbench sets ------------------------------------------------------------------
#: Every environment variable with this prefix is set by workbench (run directory, ids…).
RESERVED_ENV_PREFIX = "WORKBENCH_"
_GPU_ENV = frozenset({"CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"})
#: What torchrun (and an Indexed Job, and the Kubeflow operator) sets for each training process.
_LAUNCHER_ENV = frozenset(
    {
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "LOCAL_WORLD_SIZE",
        "GROUP_RANK",
        "GROUP_WORLD_SIZE",
        "ROLE_RANK",
        "ROLE_WORLD_SIZE",
        "ROLE_NAME",
        "MASTER_ADDR",
        "MASTER_PORT",
        "JOB_COMPLETION_INDEX",
    }
)
_LAUNCHER_PREFIXES = ("TORCHELASTIC_", "PET_")
#: Label keys workbench (or Kueue, or the Job controller) sets on a workload's objects.
RESERVED_LABELS = frozenset(
    {
        "app.kubernetes.io/name",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/component",
        "kueue.x-k8s.io/queue-name",
        "job-name",
        "controller-uid",
    }
)
#: Label key prefixes owned by workbench, the Job controller, the Dask and the Kubeflow operators.
RESERVED_LABEL_PREFIXES = (
    "workbench.jupyter.org/",
    "batch.kubernetes.io/",
    "dask.org/",
    "training.kubeflow.org/",
)


def reserved_env(name: str) -> str | None:
    """Why a spec may not set the environment variable ``name`` (one sentence), or None.

    Workbench sets these itself for every kind and backend; a value from the spec would
    override the GPU grant, the runtime's paths or the ranks of a training job.
    """
    if name == f"{RESERVED_ENV_PREFIX}SIGN_PROVENANCE":
        return f"{name} is set by workbench; sign a notebook run with --sign instead"
    if name.startswith(RESERVED_ENV_PREFIX):
        return f"{name} is set by workbench (every {RESERVED_ENV_PREFIX}* name is reserved); use another name"
    if name in _GPU_ENV:
        return f"{name} is set by workbench to the GPUs it grants; ask for GPUs with --gpus N"
    if name in _LAUNCHER_ENV or name.startswith(_LAUNCHER_PREFIXES):
        return (
            f"{name} is set by workbench's launcher (torchrun) for each process; "
            "choose the size of a job with --nodes and --procs-per-node"
        )
    return None


def reserved_label(key: str) -> str | None:
    """Why a spec may not set the label ``key`` (one sentence), or None."""
    if key == "kueue.x-k8s.io/queue-name":
        return f"label {key!r} is set by workbench from --queue; give the queue with --queue"
    if key in RESERVED_LABELS or key.startswith(RESERVED_LABEL_PREFIXES):
        return f"label {key!r} is set by workbench and cannot be given in --label; use another key"
    return None


def utf8_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (lone surrogates counted as three bytes)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def place(field: str, flag: str | None, path: tuple[Any, ...]) -> str:
    """``--env (env['A'])`` or ``parameters['grid'][3]``: where a value sits, kept short."""
    text = field
    for key in path:
        shown = repr(key)
        text += f"[{shown if len(shown) <= 40 else shown[:37] + '…'}]"
    return f"{flag} ({text})" if flag else text


def check_text(value: Any, field: str, flag: str | None = None) -> None:
    """Refuse a NUL byte or text that is not Unicode (a lone surrogate) anywhere in ``value``.

    Walks lists and mappings without recursion; a value nesting more than :data:`MAX_DEPTH`
    levels (counting the spec as the first) is refused too.

    Args:
        value: a field's value as given.
        field: the field's name; flag: its CLI flag, if it has one (both for the message).

    Raises:
        ValueError: naming where the bad text is.
    """
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(value, 2, ())]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ValueError(
                    f"{place(field, flag, path)} holds a NUL byte (\\x00), which no file, variable "
                    "or program can take; remove it"
                )
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    raise ValueError(
                        f"{place(field, flag, path)} is not valid text (a lone surrogate); send UTF-8"
                    ) from None
        elif isinstance(item, (Mapping, list, tuple, set, frozenset)):
            if depth > MAX_DEPTH:
                raise ValueError(
                    f"{place(field, flag, path)} nests deeper than {MAX_DEPTH} levels; flatten it"
                )
            if isinstance(item, Mapping):
                for key, sub in item.items():
                    stack.append((key, depth, path))
                    stack.append((sub, depth + 1, (*path, key)))
            else:
                stack.extend((sub, depth + 1, (*path, i)) for i, sub in enumerate(item))


def json_size(value: Any) -> int:
    """About how many bytes ``value`` takes written as JSON, counted without recursion.

    Stops descending below :data:`MAX_DEPTH` levels (:func:`check_text` refuses those), so a
    structure that contains itself ends too.
    """
    size = 0
    stack: list[tuple[Any, int]] = [(value, 2)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            size += utf8_size(item) + 2
        elif isinstance(item, BaseModel):
            stack.append((item.model_dump(), depth))
        elif isinstance(item, (Mapping, list, tuple, set, frozenset)):
            size += 2
            if depth > MAX_DEPTH:
                continue
            if isinstance(item, Mapping):
                for key, sub in item.items():
                    size += 2
                    stack.append((key, depth))
                    stack.append((sub, depth + 1))
            else:
                for sub in item:
                    size += 1
                    stack.append((sub, depth + 1))
        elif isinstance(item, (bool, int, float)) or item is None:
            size += len(repr(item)) if isinstance(item, (int, float)) and not isinstance(item, bool) else 5
        else:
            size += 16
    return size


def too_large(what: str, size: int, limit: int, fix: str) -> ValueError:
    """The one-line error for a value over its limit."""
    return ValueError(f"{what} is {format_bytes(size)}B; at most {format_bytes(limit)}B are allowed; {fix}")


# -- checks the spec models run ------------------------------------------------------------------
def check_spec_size(data: Mapping[Any, Any]) -> None:
    """Refuse a spec (its raw fields) over :data:`MAX_SPEC_BYTES` as JSON."""
    size = sum(json_size(key) + json_size(value) for key, value in data.items())
    if size > MAX_SPEC_BYTES:
        raise too_large("the spec", size, MAX_SPEC_BYTES, "keep data in files, not in the spec")


def check_env(env: Mapping[str, str]) -> None:
    """Refuse a reserved name, a value over :data:`MAX_ENV_VALUE_BYTES`, an env over :data:`MAX_ENV_BYTES`."""
    total = 0
    for key, value in env.items():
        reason = reserved_env(key)
        if reason:
            raise ValueError(reason)
        size = utf8_size(value)
        if size > MAX_ENV_VALUE_BYTES:
            fix = "pass large values in a file or a --secret"
            raise too_large(f"the value of {key}", size, MAX_ENV_VALUE_BYTES, fix)
        total += len(key) + size + 2
    if total > MAX_ENV_BYTES:
        raise too_large("the environment", total, MAX_ENV_BYTES, "pass large values in files")


def check_env_once(env: Mapping[str, str], secret_names: list[str]) -> None:
    """Refuse a variable given twice, by ``--env`` and ``--secret`` or by two secrets."""
    seen = set(env)
    for name in secret_names:
        if name in seen:
            how = "by --env and --secret" if name in env else "by --secret twice"
            raise ValueError(f"environment variable {name} is given twice ({how}); give it once")
        seen.add(name)


def check_labels(labels: Mapping[str, str], *, ours: bool) -> None:
    """Refuse more than :data:`MAX_LABELS` entries and, for the workload's own labels (``ours``),
    a reserved key. Node selectors name the cluster's labels, which are not ours to reserve."""
    if len(labels) > MAX_LABELS:
        raise ValueError(f"{len(labels)} entries given; at most {MAX_LABELS} are allowed")
    for key in labels:
        reason = reserved_label(key) if ours else None
        if reason:
            raise ValueError(reason)


def check_code(code: str | None) -> None:
    """Refuse code over :data:`MAX_CODE_BYTES` in UTF-8."""
    if code is None or len(code) * 4 <= MAX_CODE_BYTES:  # at most 4 bytes a character
        return
    size = utf8_size(code)
    if size > MAX_CODE_BYTES:
        fix = "read large data from a file instead of writing it in the cell"
        raise too_large("the code", size, MAX_CODE_BYTES, fix)


def non_finite(value: Any) -> float | None:
    """The first number in ``value`` (walking lists and mappings) that is infinite or NaN, or None."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return item
        if isinstance(item, (Mapping, list, tuple)) and depth <= MAX_DEPTH:
            stack.extend((sub, depth + 1) for sub in (item.values() if isinstance(item, Mapping) else item))
    return None


def check_parameters(parameters: Mapping[str, Any]) -> None:
    """Refuse notebook parameters over :data:`MAX_PARAMETERS_BYTES` as JSON, or holding a number
    that is not finite (``1e400`` reads as infinity; JSON has no way to write it)."""
    for name, value in parameters.items():
        bad = non_finite(value)
        if bad is not None:
            raise ValueError(f"parameter {name!r} holds {bad}, not a finite number; give one within ±1.8e308")
    size = json_size(parameters)
    if size > MAX_PARAMETERS_BYTES:
        fix = "pass large inputs as a path the notebook reads"
        raise too_large("the parameters (as JSON)", size, MAX_PARAMETERS_BYTES, fix)


# -- keeping errors about huge values short ------------------------------------------------------
#: most characters of a bad value shown in an error
SHOWN = 80
#: most characters of an error message; longer ones lose their middle
MESSAGE = 600


def shorten(text: str, limit: int = MESSAGE) -> str:
    """``text``, or its beginning and end around an ellipsis when it is longer than ``limit``."""
    return text if len(text) <= limit else f"{text[: limit * 2 // 3]}…{text[-(limit // 3) :]}"


def shown(value: Any) -> str:
    """A bad value as the user typed it: a number given as text ("0" from a flag) without quotes."""
    if isinstance(value, str):
        if len(value) > SHOWN:
            return repr(value[:SHOWN]) + "…"
        try:
            float(value)
        except ValueError:
            return repr(value)
        return value
    if isinstance(value, (dict, list, tuple, set)) and len(value) > 20:
        return f"a {type(value).__name__} of {len(value)} items"
    return shorten(repr(value), SHOWN)


def bounded_value(value: Any, loc: tuple[int | str, ...]) -> Any:
    """The bad value an error carries: not the whole spec (``loc`` empty), not megabytes of it."""
    if not loc:  # a problem of the whole spec: its message says where
        return None
    if isinstance(value, (dict, list, tuple, set)):
        return None if len(value) > 20 or len(repr(value)) > 4 * SHOWN else value
    if isinstance(value, str) and len(value) > SHOWN:
        return value[:SHOWN] + "…"
    return value
