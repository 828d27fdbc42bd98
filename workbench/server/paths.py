"""Files named in a spec sent over HTTP must lie under the server's root directory.

The REST API serves the files of the Jupyter root (what the file browser shows), so a spec
that names a notebook or a script is read relative to that root, and one that points
outside it (``..``, an absolute path elsewhere, a symlink leading out) is refused with
:class:`~workbench.errors.PermissionDenied` (HTTP 403): the request is well formed, but the
server will not read that file for a browser client.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import PermissionDenied, SpecError

#: spec fields that name a file the launch reads
FILE_FIELDS = ("notebook", "script")


def confine(value: str, root: Path, field: str) -> str:
    """``value`` as a path relative to ``root``, symlinks resolved.

    Args:
        value: the path as sent: relative to the root, or absolute.
        root: the server's root directory, resolved.
        field: the spec field, for the message.

    Raises:
        PermissionDenied: the path leads outside the root.
        SpecError: the path cannot be resolved (a NUL byte, a symlink loop).
    """
    candidate = Path(value)
    try:
        resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise SpecError(
            f"invalid {field} path {value!r}: {exc}", value=value, hint="give a path inside the Jupyter root"
        ) from None
    if not resolved.is_relative_to(root):
        raise PermissionDenied(
            f"{field} {value!r} is outside the server's root directory",
            value=value,
            hint="give a path inside the Jupyter root, as the file browser shows it",
        )
    return resolved.relative_to(root).as_posix()


def confine_spec(raw: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """The spec with each file it names made relative to ``root``; non-strings are left to validation.

    A notebook's ``output`` on this machine (a path for the local backend, or a ``file://``
    URL) is confined too; other URLs (s3://, gs://) and paths inside a Kubernetes pod are not
    files of this server.
    """
    spec = dict(raw)
    for field in FILE_FIELDS:
        value = spec.get(field)
        if isinstance(value, str) and value:
            spec[field] = confine(value, root, field)
    output = spec.get("output")
    if isinstance(output, str) and output:
        if output.startswith("file://"):
            path = output.removeprefix("file://")
            spec["output"] = "file://" + str(root / confine(path or "/", root, "output"))
        elif "://" not in output and spec.get("backend") != "kubernetes":
            spec["output"] = confine(output, root, "output")
    return spec
