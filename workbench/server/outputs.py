"""A workload's run directory over HTTP: the list of its files, each file's bytes, its spec.

``GET workloads/NAME/files`` lists every regular file under the run directory (recursively,
sorted, at most :data:`MAX_FILES`); ``GET workloads/NAME/files/REL`` sends one of them, as an
attachment unless ``?inline=1`` asks to show it. A REL is confined to the run directory: an
absolute path or a ``..`` part is refused (403), and so is a path that resolves outside it
through a symlink; control characters (NUL included) are bad input (400). Nothing is ever
sent as ``text/html`` or ``image/svg+xml``: in the Lab origin such a file could run script, so
inline those go out as ``text/plain`` (and every file answer carries a sandboxing CSP).

``GET workloads/NAME/spec`` answers the launchable spec of a workload (what the launch form
needs to clone it): its stored fields without the name, nulls and fields a launch sets.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import os
import stat
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.iostream import StreamClosedError

from ..errors import NotFound, PermissionDenied, SpecError
from ..notebooks import EXECUTED
from ..payloads import launch_cwd, stored_code
from .base import WorkbenchHandler

if TYPE_CHECKING:
    from ..service import Service
    from ..store import Workload

#: most files a listing names (the first ones, sorted by path)
MAX_FILES = 1000
#: most directory entries a listing looks at before it stops (a run that wrote millions)
MAX_SCANNED = 20_000
CHUNK = 1 << 20
#: inline, these go out as what they are; everything else inline is text/plain
_INLINE_TYPES = {
    ".ipynb": "application/json",
    ".json": "application/json",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
#: never sent with their own type, inline or not: a browser would run their script
_ACTIVE_TYPES = ("text/html", "image/svg+xml", "application/xhtml+xml", "text/xml", "application/xml")
_REL_HINT = "give a path relative to the run directory, as GET workloads/NAME/files lists it"


def run_directory(workload: Workload) -> Path | None:
    """The workload's run directory on this machine, resolved; None when there is none here.

    A notebook run on Kubernetes publishes its files to its ``output``; when that is a
    ``file://`` URL this machine reads (a shared filesystem), that folder is its run directory
    (the local one holds only what was sent). A schedule's runs each have their own.
    """
    location = workload.info.get("location")
    candidates = [workload.run_dir]
    if (
        workload.kind == "notebook"
        and workload.backend != "local"
        and not workload.spec.get("schedule")
        and isinstance(location, str)
        and location.startswith("file://")
    ):
        candidates.insert(0, location.removeprefix("file://"))
    for candidate in candidates:
        if not candidate:
            continue
        try:
            folder = Path(candidate).resolve()
        except (OSError, RuntimeError, ValueError):
            continue
        if folder.is_dir():
            return folder
    return None


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def list_files(folder: Path) -> tuple[list[dict[str, Any]], bool]:
    """The regular files under ``folder`` (sorted, at most :data:`MAX_FILES`) and whether any were left
    out. Symlinked folders are not entered; a symlinked file is listed when it resolves to a regular
    file inside ``folder``."""
    found: list[dict[str, Any]] = []
    pending = [folder]
    scanned = 0
    truncated = False
    while pending:
        current = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            scanned += 1
            if scanned > MAX_SCANNED:
                truncated = True
                break
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                    continue
                path = Path(entry.path)
                if entry.is_symlink():
                    target = path.resolve()
                    if not target.is_relative_to(folder):
                        continue
                    info = target.stat()
                else:
                    info = entry.stat(follow_symlinks=False)
            except (OSError, RuntimeError, ValueError):
                continue
            if stat.S_ISREG(info.st_mode):
                rel = path.relative_to(folder).as_posix()
                found.append({"path": rel, "size": info.st_size, "modified": _iso(info.st_mtime)})
        if truncated:
            break
    found.sort(key=lambda f: f["path"])
    return found[:MAX_FILES], truncated or len(found) > MAX_FILES


def confine_rel(rel: str, folder: Path) -> Path:
    """``rel`` as a regular file inside ``folder`` (resolved).

    Raises:
        SpecError: empty, or a control character (NUL included) in it.
        PermissionDenied: absolute, with a ``..`` part, or resolving outside ``folder``.
        NotFound: no regular file there.
    """
    if not rel or any(ord(c) < 32 or ord(c) == 127 for c in rel):
        raise SpecError(f"file path {rel!r} is empty or holds a control character", value=rel, hint=_REL_HINT)
    pure = PurePosixPath(rel)
    if pure.is_absolute() or rel.startswith("\\") or ".." in pure.parts or ".." in rel.split("\\"):
        raise PermissionDenied(
            f"file path {rel!r} leads outside the run directory; give it relative, without '..'",
            value=rel,
            hint=_REL_HINT,
        )
    try:
        path = (folder / pure).resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise SpecError(f"file path {rel!r} cannot be resolved: {exc}", value=rel, hint=_REL_HINT) from None
    if not path.is_relative_to(folder):
        raise PermissionDenied(
            f"file path {rel!r} leads outside the run directory (through a symlink)",
            value=rel,
            hint=_REL_HINT,
        )
    if not path.is_file():
        raise NotFound(f"the run directory holds no file {rel!r}", value=rel, hint=_REL_HINT)
    return path


def content_type(path: Path, *, inline: bool) -> str:
    """What a file is sent as: never a type a browser would run script from."""
    if inline:
        return _INLINE_TYPES.get(path.suffix.lower(), "text/plain; charset=utf-8")
    guessed = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return "application/octet-stream" if guessed in _ACTIVE_TYPES else guessed


def _files(service: Service, name: str) -> dict[str, Any]:
    workload = service.store.find(name)
    folder = run_directory(workload)
    if folder is None:
        return {"run_dir": None, "files": [], "notebook": None, "truncated": False}
    files, truncated = list_files(folder)
    notebook = EXECUTED if any(f["path"] == EXECUTED for f in files) else None
    return {"run_dir": str(folder), "files": files, "notebook": notebook, "truncated": truncated}


def _folder(service: Service, name: str) -> Path:
    workload = service.store.find(name)
    folder = run_directory(workload)
    if folder is None:
        raise NotFound(
            f"{workload.id} has no run directory on this server",
            value=workload.id,
            hint="GET workloads/NAME/files lists what there is",
        )
    return folder


class FilesHandler(WorkbenchHandler):
    """``GET workloads/NAME/files``: ``{"run_dir", "files": [{"path", "size", "modified"}], "notebook"}``."""

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        self.reply(await self.call(lambda s: _files(s, name)))


class FileHandler(WorkbenchHandler):
    """``GET workloads/NAME/files/REL?inline=``: one file of the run directory."""

    @property
    def content_security_policy(self) -> str:
        return super().content_security_policy + "; sandbox"

    @web.authenticated
    @authorized
    async def get(self, name: str, rel: str) -> None:
        inline = self.flag("inline")
        folder = await self.call(lambda s: _folder(s, name))
        path = confine_rel(rel, folder)
        try:  # the path is resolved: a symlink put in its place since is not followed
            handle = os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb")
        except OSError as exc:
            raise NotFound(f"cannot read {rel!r}: {exc.strerror}", value=rel, hint=_REL_HINT) from None
        with handle:
            size = os.fstat(handle.fileno()).st_size
            kind = content_type(path, inline=inline)
            self.set_header("Content-Type", kind)
            self.set_header("Content-Length", str(size))
            self.set_header("X-Content-Type-Options", "nosniff")
            self.set_header("Cache-Control", "no-cache")
            disposition = "inline" if inline else "attachment"
            self.set_header("Content-Disposition", f"{disposition}; filename*=UTF-8''{quote(path.name)}")
            sent = 0
            try:
                while sent < size:
                    chunk = await asyncio.to_thread(handle.read, min(CHUNK, size - sent))
                    if not chunk:
                        break
                    sent += len(chunk)
                    self.write(chunk)
                    await self.flush()
            except StreamClosedError:
                return
        self.finish(set_content_type=kind)


#: fields a launch sets or that name one workload, never cloned
_NOT_LAUNCH_FIELDS = ("name",)
#: kinds whose cell code is kept in the payload folder
_CODE_KINDS = ("pod", "train", "serve")
#: fields that name a file, relative to the launch's working directory
_FILE_FIELDS = ("notebook", "script")


def launchable_spec(workload: Workload, root: Path) -> dict[str, Any]:
    """The spec fields that launch this workload again: the stored spec without its name and nulls
    (in ``resources`` too), files named relative to ``root`` when they lie in it (a launch from a
    kernel or the CLI recorded them relative to its own working directory)."""
    spec = {k: v for k, v in workload.spec.items() if k not in _NOT_LAUNCH_FIELDS and v is not None}
    if isinstance(spec.get("resources"), dict):
        spec["resources"] = {k: v for k, v in spec["resources"].items() if v is not None}
    spec["kind"] = workload.kind
    if workload.kind in _CODE_KINDS and not spec.get("script") and spec.get("code") is None:
        code = stored_code(workload)
        if code is not None:
            spec["code"] = code
    cwd = launch_cwd(workload)
    for field in _FILE_FIELDS:
        value = spec.get(field)
        if isinstance(value, str) and value and cwd is not None:
            try:
                path = (Path(cwd) / value).resolve()
            except (OSError, RuntimeError, ValueError):
                continue
            if path.is_relative_to(root):
                spec[field] = path.relative_to(root).as_posix()
    return json.loads(json.dumps(spec, default=str))  # type: ignore[no-any-return]


class SpecHandler(WorkbenchHandler):
    """``GET workloads/NAME/spec``: ``{"kind", "spec"}``, what the launch form needs to clone it."""

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        root = self.root_dir
        workload = await self.call(lambda s: s.store.find(name))
        spec = await asyncio.to_thread(launchable_spec, workload, root)
        self.reply({"kind": workload.kind, "spec": spec})
