"""The ``--send`` values of a launch, pickled in the process that holds them.

Only the standard library and cloudpickle (imported when something is sent): the kernel that
launches through the agent (:mod:`workbench.agent_client`) pickles here without pydantic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import SpecError


def pickled_inputs(send: list[str], inputs: Mapping[str, Any]) -> bytes | None:
    """The ``--send`` values, cloudpickled; None when nothing is sent.

    Raises:
        SpecError: a name the kernel lacks, or a value that cannot be pickled.
    """
    missing = [name for name in send if name not in inputs]
    if missing:
        raise SpecError(
            f"--send {','.join(missing)}: no such variable in the kernel",
            value=",".join(missing),
            hint="define it before the cell, or drop it from --send",
        )
    if not send:
        return None
    import cloudpickle

    values = {}
    for name in send:
        try:
            cloudpickle.dumps(inputs[name])
        except Exception as exc:
            raise SpecError(
                f"--send {name}: cannot be pickled ({type(exc).__name__}: {exc})",
                value=name,
                hint="send plain data (arrays, frames, dicts) or rebuild it inside the cell",
            ) from None
        values[name] = inputs[name]
    blob: bytes = cloudpickle.dumps(values)
    return blob
