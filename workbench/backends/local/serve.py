"""Local endpoints: the desired state their router reconciles, and their status read back.

A serve workload's supervised process is its router (``workbench.runtime.serve_router``). What
the endpoint should run is ``desired.json`` in the run directory: the revisions that should
take traffic and their percent, the replica count or autoscaling range, and the history of
every revision. A rollout, a promotion, an undo or a scale writes a new generation of it
(atomically, under a lock, 0600) and wakes the router with SIGHUP; the router starts, drains
and stops replicas to match and writes how far it got into the record's ``info``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ...errors import BackendUnavailable, Conflict, NotFound, SpecError
from ...private import make_private, private_dir, write_private
from ...runtime import procs
from ...spec import RevisionChange, ServeSpec
from ...spec_serve import is_mlflow_uri
from ...store import Store, Workload
from ..base import Payload
from .kinds import write_code

DESIRED = "desired.json"
_LOCK = "desired.lock"
FIRST_PAYLOAD = "payload"


def check_model_server() -> None:
    """The model server (KServe's, the ``serve`` extra) must be installed to serve locally.

    Raises:
        BackendUnavailable: it is not, with the command that installs it.
    """
    import importlib.util

    if importlib.util.find_spec("kserve") is None:
        raise BackendUnavailable(
            "serving a model locally needs KServe's model server, which is not installed here",
            value="kserve",
            hint="pip install 'jupyter-ml-workbench[serve]'",
        )


def _model_uri(uri: str | None, cwd: str | None) -> str | None:
    """A path is made absolute where it was given; a URL stays as it is."""
    if uri is None or "://" in uri or is_mlflow_uri(uri):
        return uri
    return str((Path(cwd or ".") / uri).resolve())


def stage_endpoint(
    workload_id: str, spec: ServeSpec, payload: Payload, stage_code: Callable[[Path], None]
) -> Callable[[Path], None]:
    """Stage the first revision (``payload/``) and the first generation of ``desired.json``."""
    model_uri = _model_uri(spec.model_uri, payload.cwd)

    def stage(run_dir: Path) -> None:
        stage_code(run_dir)
        meta_path = run_dir / FIRST_PAYLOAD / "meta.json"
        meta = json.loads(meta_path.read_text())
        meta.update(
            model_name=spec.served_name(workload_id), model_uri=model_uri, env={}, max_body=spec.max_body
        )
        meta_path.write_text(json.dumps(meta))
        desired = {
            "generation": 1,
            "model_name": spec.served_name(workload_id),
            "max_body": spec.max_body,
            "port": spec.port,
            "replicas": spec.replicas,
            "autoscale": [spec.autoscale.minimum, spec.autoscale.maximum] if spec.autoscale else None,
            "target_concurrency": spec.target_concurrency,
            "revisions": [{"revision": 1, "payload": FIRST_PAYLOAD, "traffic": 100}],
            "history": [_entry(1, FIRST_PAYLOAD, "launch", model_uri, spec.image, None)],
        }
        (run_dir / DESIRED).write_text(json.dumps(desired, indent=2))

    return stage


def _entry(
    revision: int, folder: str, cause: str, model_uri: str | None, image: str | None, base: int | None
) -> dict[str, Any]:
    return {
        "revision": revision,
        "payload": folder,
        "created": time.time(),
        "cause": cause,
        "model_uri": model_uri,
        "image": image,
        "base": base,
    }


@contextlib.contextmanager
def _desired(workload: Workload) -> Iterator[dict[str, Any]]:
    """The endpoint's desired state, to change in place; written back (new generation) and the
    router woken when the block ends without an error."""
    run_dir = Path(workload.run_dir)
    if workload.done:
        raise Conflict(
            f"endpoint {workload.id} is {workload.status}; nothing serves it any more",
            value=workload.id,
            hint=f"serve it again (`workbench rm {workload.id}` first to reuse the name)",
        )
    fd = os.open(run_dir / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        desired: dict[str, Any] = json.loads((run_dir / DESIRED).read_text())
        yield desired
        desired["generation"] = int(desired["generation"]) + 1
        scratch = run_dir / f".{DESIRED}.{os.getpid()}"
        write_private(scratch, json.dumps(desired, indent=2))
        os.replace(scratch, run_dir / DESIRED)
    finally:
        os.close(fd)
    _wake(workload)


def _wake(workload: Workload) -> None:
    """SIGHUP to the router: it reads ``desired.json`` again (it also notices within 0.5 s)."""
    if workload.pid and procs.is_alive(workload.pid, workload.id):
        with contextlib.suppress(ProcessLookupError):
            os.kill(workload.pid, signal.SIGHUP)


def read_desired(workload: Workload) -> dict[str, Any]:
    try:
        result: dict[str, Any] = json.loads((Path(workload.run_dir) / DESIRED).read_text())
    except (OSError, ValueError) as exc:
        raise NotFound(
            f"{workload.id} has no endpoint state ({DESIRED}: {exc})",
            value=workload.id,
            hint="`workbench describe` it; only serve workloads have one",
        ) from None
    return result


def _serving(workload: Workload, desired: dict[str, Any]) -> tuple[int, int | None]:
    """The stable revision and the canary (or None), as the router last reported them, else
    as desired."""
    info = workload.info
    if info.get("revision"):
        return int(info["revision"]), (int(info["canary"]) if info.get("canary") else None)
    ordered = sorted(desired["revisions"], key=lambda r: -int(r["traffic"]))
    return int(ordered[0]["revision"]), None


def _history(desired: dict[str, Any], revision: int) -> dict[str, Any]:
    for entry in desired["history"]:
        if int(entry["revision"]) == revision:
            return dict(entry)
    known = ", ".join(str(e["revision"]) for e in desired["history"])
    raise SpecError(
        f"revision {revision} does not exist (revisions: {known})",
        value=revision,
        hint="`workbench rollout history NAME` lists them",
    )


def rollout(workload: Workload, change: RevisionChange, payload: Payload) -> None:
    with _desired(workload) as desired:
        stable, canary = _serving(workload, desired)
        if canary is not None:
            raise Conflict(
                f"revision {canary} of {workload.id} is a canary still: promote or undo it first",
                value=workload.id,
                hint=f"`workbench rollout promote {workload.id}` or `workbench rollout undo {workload.id}`",
            )
        base = _history(desired, stable)
        number = max(int(e["revision"]) for e in desired["history"]) + 1
        folder = f"revisions/{number}"
        run_dir = Path(workload.run_dir)
        meta = json.loads((run_dir / base["payload"] / "meta.json").read_text())
        model_uri = _model_uri(change.model_uri, payload.cwd) if change.model_uri else meta.get("model_uri")
        meta.update(model_uri=model_uri, env={**meta.get("env", {}), **change.env})
        target = run_dir / folder
        private_dir(target.parent)
        private_dir(target)
        try:
            if change.code is not None or change.script is not None:
                extra = {k: v for k, v in meta.items() if k not in ("entry", "argv0")}
                write_code(target, payload, change.script, extra)
            else:  # the same code: copied, so each revision's folder stands on its own
                for item in (run_dir / base["payload"]).iterdir():
                    shutil.copy2(item, target / item.name)
                (target / "meta.json").write_text(json.dumps(meta))
            make_private(target)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        cause = change.cause or _cause(change)
        image = change.image or base.get("image")
        desired["history"].append(_entry(number, folder, cause, model_uri, image, stable))
        if change.canary is not None and change.canary < 100:
            desired["revisions"] = [
                {"revision": stable, "payload": base["payload"], "traffic": 100 - change.canary},
                {"revision": number, "payload": folder, "traffic": change.canary},
            ]
        else:
            desired["revisions"] = [{"revision": number, "payload": folder, "traffic": 100}]


def _cause(change: RevisionChange) -> str:
    parts = []
    if change.code is not None:
        parts.append("new cell")
    if change.script is not None:
        parts.append(f"new file {change.script}")
    if change.model_uri is not None:
        parts.append(f"model {change.model_uri}")
    if change.env:
        parts.append("env " + ",".join(f"{k}={v}" for k, v in change.env.items()))
    if change.image is not None:
        parts.append(f"image {change.image}")
    if change.canary is not None:
        parts.append(f"canary {change.canary}%")
    return "; ".join(parts)


def promote(workload: Workload) -> None:
    with _desired(workload) as desired:
        _, canary = _serving(workload, desired)
        if canary is None:
            raise Conflict(
                f"{workload.id} has no canary to promote",
                value=workload.id,
                hint="start one with `workbench rollout NAME FILE --canary 20`",
            )
        entry = _history(desired, canary)
        desired["revisions"] = [{"revision": canary, "payload": entry["payload"], "traffic": 100}]


def undo(workload: Workload, to_revision: int | None) -> None:
    with _desired(workload) as desired:
        stable, canary = _serving(workload, desired)
        if canary is not None and to_revision is None:  # a canary's rollback: back to all on stable
            entry = _history(desired, stable)
            desired["revisions"] = [{"revision": stable, "payload": entry["payload"], "traffic": 100}]
            return
        newest = max(desired["revisions"], key=lambda r: int(r["revision"]))
        if to_revision is None:
            base = _history(desired, int(newest["revision"])).get("base")
            if base is None:
                raise Conflict(
                    f"{workload.id} has no earlier revision to go back to",
                    value=workload.id,
                    hint="`workbench rollout history NAME` lists the revisions",
                )
            to_revision = int(base)
        target = _history(desired, to_revision)
        number = max(int(e["revision"]) for e in desired["history"]) + 1
        desired["history"].append(
            _entry(
                number,
                target["payload"],
                f"undo to {to_revision}",
                target.get("model_uri"),
                target.get("image"),
                stable,
            )
        )
        desired["revisions"] = [{"revision": number, "payload": target["payload"], "traffic": 100}]


def scale(workload: Workload, replicas: int | None, autoscale: tuple[int, int] | None) -> None:
    with _desired(workload) as desired:
        desired["replicas"] = replicas if replicas is not None else desired["replicas"]
        desired["autoscale"] = list(autoscale) if autoscale else None
        if autoscale:
            desired["replicas"] = min(max(int(desired["replicas"]), autoscale[0]), autoscale[1])


def state(workload: Workload) -> dict[str, Any]:
    desired = read_desired(workload)
    info = workload.info
    answered = int(info.get("generation") or 0)
    rollout = info.get("rollout") or {}
    phase = rollout.get("phase", "progressing") if answered >= int(desired["generation"]) else "progressing"
    if workload.done:
        phase = "failed" if workload.status == "failed" else phase
    return {
        "generation": int(desired["generation"]),
        "phase": phase,
        "message": rollout.get("message") or (workload.message if workload.done else "") or "",
        "revision": info.get("revision"),
        "canary": info.get("canary"),
        "traffic": info.get("traffic") or {},
        "ready": info.get("ready", 0),
        "desired": info.get("desired", desired["replicas"]),
    }


def history(workload: Workload) -> list[dict[str, Any]]:
    states = {int(r["revision"]): r for r in workload.info.get("revisions") or []}
    rows = []
    for entry in read_desired(workload)["history"]:
        row = {k: entry.get(k) for k in ("revision", "created", "cause", "model_uri", "image")}
        row["state"] = states.get(int(entry["revision"]), {}).get("state", "stopped")
        rows.append(row)
    return rows


_CLIENT: Any = None


def _client() -> Any:
    """One keep-alive HTTP client per process for requests to local endpoints."""
    global _CLIENT
    if _CLIENT is None:
        import httpx

        _CLIENT = httpx.Client(limits=httpx.Limits(max_keepalive_connections=16))
    return _CLIENT


def request(
    store: Store, workload: Workload, method: str, path: str, body: bytes | None, timeout: float
) -> tuple[int, bytes]:
    import httpx

    url = workload.info.get("url") or store.get(workload.id).info.get("url")
    if not url:
        raise BackendUnavailable(
            f"endpoint {workload.id} has no URL yet (it is {workload.status})",
            value=workload.id,
            hint=f"`workbench rollout status {workload.id}` waits until it is ready",
        )
    headers = {"content-type": "application/json"} if body is not None else {}
    try:
        answer = _client().request(method, url + path, content=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise BackendUnavailable(
            f"cannot reach endpoint {workload.id} at {url}: {exc}",
            value=url,
            hint=f"`workbench describe {workload.id}` shows whether it still runs",
        ) from None
    return answer.status_code, answer.content
