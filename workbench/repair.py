"""Records rebuilt from the run directories the store does not know.

A deleted ``workbench.db`` (or a corrupt one moved aside) loses records, not workloads: each
local run directory keeps a copy of its record (``record.json``, rewritten by the store on
every change), its ``spec.json`` and ``launch.json``, and its logs. A store file made new
rebuilds the records of the run directories it finds (the first process to open it does, and
says so in one line); ``workbench doctor --repair`` does the same on demand, after moving a
corrupt file aside. A workload whose supervisor still runs stays active (its supervisor
finds the new file and records the outcome there); the outcome of any other is what its
copy recorded, or "outcome unknown" — never a guess.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from . import store_file
from .errors import Conflict
from .runtime import procs
from .store import ACTIVE, FAILED, PENDING, RUNNING, Store, Workload

log = logging.getLogger("workbench")
#: The module a local workload's guard and supervisor run as (their command line names the workload).
SUPERVISOR_MODULE = "workbench.runtime.supervisor"
UNKNOWN = "record rebuilt from its run directory; outcome unknown"
_FIELDS = {f.name for f in dataclasses.fields(Workload)}


def open_store(path: Path, runs_dir: Path) -> Store:
    """The store at ``path``; when its file is (or later turns out) new, the records of the
    run directories in ``runs_dir`` are rebuilt first."""
    store = Store(path)
    store.on_replaced = lambda replaced: rebuild_if_new(replaced, runs_dir)
    rebuild_if_new(store, runs_dir)
    return store


def rebuild_if_new(store: Store, runs_dir: Path) -> list[Workload]:
    """Rebuild once per new store file (whichever process claims it), saying so in one line."""
    if not store.claim_rebuild():
        return []
    rebuilt = rebuild(store, runs_dir)
    if rebuilt:
        log.warning(
            "workbench: the store %s was missing and is new; rebuilt %d record(s) from the run "
            "directories in %s",
            store.path,
            len(rebuilt),
            runs_dir,
        )
    return rebuilt


def unknown(store: Store, runs_dir: Path) -> list[Workload]:
    """The records that the run directories in ``runs_dir`` tell of and the store lacks."""
    try:
        entries = sorted(runs_dir.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    known = store.ids()
    found = []
    for run_dir in entries:  # staging folders (".staging-…") belong to launches under way
        if run_dir.is_dir() and not run_dir.name.startswith(".") and run_dir.name not in known:
            workload = from_run_dir(run_dir, store.path)
            if workload is not None:
                found.append(workload)
    return found


def rebuild(store: Store, runs_dir: Path) -> list[Workload]:
    """Insert a record for every run directory the store does not know; the records made."""
    rebuilt = []
    for workload in unknown(store, runs_dir):
        try:
            rebuilt.append(store.insert(workload))
        except Conflict:  # another process rebuilt or launched it meanwhile
            continue
    return rebuilt


def from_run_dir(run_dir: Path, db_path: Path) -> Workload | None:
    """The record a local run directory tells of; None when it is not one."""
    data = store_file.read_record(run_dir)
    if data is None or not {"id", "kind", "status", "spec", "created"} <= data.keys():
        data = _from_files(run_dir)
    if data is None or data.get("backend", "local") != "local":
        return None
    data = {key: value for key, value in data.items() if key in _FIELDS}
    data.update(id=run_dir.name, backend="local", run_dir=str(run_dir))
    info = data.get("info")
    data["info"] = {**(info if isinstance(info, dict) else {}), "rebuilt": time.time()}
    if data["status"] in ACTIVE:
        _settle(data, run_dir, db_path)
    try:
        return Workload(**data)
    except TypeError:
        return None


def _from_files(run_dir: Path) -> dict[str, Any] | None:
    """A pending record from ``spec.json`` and ``launch.json`` (no copy of the record yet)."""
    try:
        spec = json.loads((run_dir / "spec.json").read_text())
        launch = json.loads((run_dir / "launch.json").read_text())
        created = (run_dir / "spec.json").stat().st_mtime
    except (OSError, ValueError):
        return None
    if not isinstance(spec, dict) or not isinstance(launch, dict) or "argv" not in launch:
        return None  # a Kubernetes workload's local copy: the cluster has its truth
    spec.pop("code", None)
    visible = str(launch.get("env", {}).get("CUDA_VISIBLE_DEVICES", ""))
    return {
        "kind": str(spec.get("kind", "pod")),
        "backend": spec.get("backend") or "local",
        "status": PENDING,
        "spec": spec,
        "created": created,
        "gpus": [gpu for gpu in visible.split(",") if gpu],
    }


def _settle(data: dict[str, Any], run_dir: Path, db_path: Path) -> None:
    """An active record stays active while its supervisor runs; else its outcome is unknown."""
    found = procs.with_argv_tail(SUPERVISOR_MODULE, str(db_path), run_dir.name)
    if not found:
        log_file = run_dir / "logs" / "output.log"
        ended = log_file.stat().st_mtime if log_file.exists() else time.time()
        data.update(status=FAILED, exit_code=None, message=UNKNOWN, ended=ended)
        return
    # the guard and the supervisor carry the same command line: the supervisor is the child
    supervisor = next((pid for pid in found if _parent(pid) in found), found[0])
    data["supervisor_pid"] = supervisor
    below = [pid for pid in procs.descendants(supervisor) if pid not in found]
    if data["status"] == PENDING and below and not data.get("pid"):  # no copy of the record yet
        data.update(status=RUNNING, pid=min(below), started=(run_dir / "launch.json").stat().st_mtime)


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    return int(text[text.rfind(")") + 2 :].split()[1])


def move_aside(path: Path) -> Path:
    """Rename a store file (with its journal) out of the way; the new name of the file."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    number = 1
    while aside.exists():
        number += 1
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{number}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            os.replace(source, f"{aside}{suffix}")
    return aside
