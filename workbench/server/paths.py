"""Files and locations named in a spec sent over HTTP must stay under the server's root directory.

The REST API serves the files of the Jupyter root (what the file browser shows), so a spec
that names a notebook or a script is read relative to that root, and a notebook's run
directory (``output``) is written there. A path that points outside the root (``..``, an
absolute path elsewhere, a symlink leading out) is refused with
:class:`~workbench.errors.PermissionDenied` (HTTP 403), and so is a URL whose scheme the
server's configuration does not allow (``WorkbenchApp.allowed_output_schemes``, empty by
default: nothing beyond the root). Forms that would be read differently by different
programs — leading or trailing blanks, control characters, ``file:`` without ``//``, a drive
letter, ``local://``, fsspec's chained ``a::b`` URLs — are refused as bad input (HTTP 400).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from ..errors import PermissionDenied, SpecError

#: spec fields that name a file the launch reads
FILE_FIELDS = ("notebook", "script")
#: spec fields that name a location the launch writes to
LOCATION_FIELDS = ("output",)
#: a URL scheme (RFC 3986), or what looks like one: ``file:``, ``c:``
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
#: a scheme name as the server's config lists it
SCHEME_NAME = re.compile(r"^[a-z][a-z0-9+.-]*$")
#: schemes fsspec maps to this machine's filesystem besides ``file``; never allowed
_LOCAL_ALIASES = frozenset({"local"})
_ROOT_HINT = "give a path inside the Jupyter root, as the file browser shows it"


def check_form(value: str, field: str) -> None:
    """Refuse the forms of a path or URL that do not mean one clear place.

    Raises:
        SpecError: blanks around it, a control character, a chained URL, a scheme without
            ``//`` (``file:/x``, ``c:\\x``), or ``local://``.
    """
    if value != value.strip():
        raise SpecError(
            f"{field} {value!r} starts or ends with blanks; remove them",
            value=value,
            hint=_ROOT_HINT,
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise SpecError(
            f"{field} {value!r} holds a control character; remove it", value=value, hint=_ROOT_HINT
        )
    if "::" in value:
        raise SpecError(
            f"{field} {value!r} is a chained URL (a::b); give one path or one URL",
            value=value,
            hint=_ROOT_HINT,
        )
    match = _SCHEME.match(value)
    if match and not value.startswith(f"{match[1]}://"):
        raise SpecError(
            f"{field} {value!r} looks like a URL or a drive but is neither; write a path inside the "
            "Jupyter root (./ in front of a file name holding ':') or SCHEME://…",
            value=value,
            hint=_ROOT_HINT,
        )
    if match and match[1].lower() in _LOCAL_ALIASES:
        raise SpecError(
            f"{field} {value!r}: write a path inside the Jupyter root (or file://) instead of {match[1]}://",
            value=value,
            hint=_ROOT_HINT,
        )


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
        raise SpecError(f"invalid {field} path {value!r}: {exc}", value=value, hint=_ROOT_HINT) from None
    if not resolved.is_relative_to(root):
        raise PermissionDenied(
            f"{field} {value!r} is outside the server's root directory", value=value, hint=_ROOT_HINT
        )
    return resolved.relative_to(root).as_posix()


def confine_location(
    value: str, root: Path, field: str, allowed_schemes: Collection[str], *, pod: bool
) -> str:
    """A run-directory location sent over HTTP, confined.

    Args:
        value: a path, a ``file://`` URL, or a URL of another filesystem.
        root: the server's root directory, resolved.
        field: the spec field, for the message.
        allowed_schemes: URL schemes (lower case) the server's config allows besides paths.
        pod: the workload runs on Kubernetes, where a path is one inside its pod (a mounted
            volume), not a file of this server.

    Raises:
        SpecError: an odd form (see :func:`check_form`).
        PermissionDenied: a path outside the root, or a scheme the config does not allow.
    """
    check_form(value, field)
    scheme, sep, rest = value.partition("://")
    if not sep:
        return value if pod else confine(value, root, field)
    scheme = scheme.lower()
    if scheme == "file":
        return "file://" + str(root / confine(rest or "/", root, field))
    if scheme not in allowed_schemes:
        allowed = ", ".join(f"{s}://" for s in sorted(allowed_schemes)) or "no URL"
        raise PermissionDenied(
            f"{field} {value!r}: this server allows {allowed} beyond paths inside its root directory",
            value=value,
            hint=(
                f"give a path inside the Jupyter root, or have the admin add {scheme!r} to "
                "c.WorkbenchApp.allowed_output_schemes"
            ),
        )
    return f"{scheme}://{rest}"


def confine_spec(raw: Mapping[str, Any], root: Path, allowed_schemes: Collection[str] = ()) -> dict[str, Any]:
    """The spec with each file it names made relative to ``root``; non-strings are left to validation.

    A notebook's ``output`` is confined with :func:`confine_location`: a path (for the local
    backend) or a ``file://`` URL must lie in the root, another URL needs its scheme in
    ``allowed_schemes``; a path inside a Kubernetes pod (``backend: kubernetes``) is not a
    file of this server and only has its form checked.
    """
    spec = dict(raw)
    for field in FILE_FIELDS:
        value = spec.get(field)
        if isinstance(value, str) and value:
            check_form(value, field)
            if _SCHEME.match(value):
                raise SpecError(
                    f"{field} {value!r} is a URL; the server reads {field}s from its root directory",
                    value=value,
                    hint=_ROOT_HINT,
                )
            spec[field] = confine(value, root, field)
    pod = spec.get("backend") == "kubernetes"
    for field in LOCATION_FIELDS:
        value = spec.get(field)
        if isinstance(value, str) and value:
            spec[field] = confine_location(value, root, field, allowed_schemes, pod=pod)
    return spec
