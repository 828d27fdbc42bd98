"""`workbench doctor`: what is configured, what can be reached, what is allowed."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .backends.base import FAIL, INFO, OK, WARN, Check
from .config import Settings, config_path
from .errors import StoreError

if TYPE_CHECKING:
    from .service import Service

__all__ = ["FAIL", "INFO", "OK", "WARN", "Check", "repair", "run_checks"]


def _config(settings: Settings) -> list[Check]:
    checks = []
    path = config_path()
    checks.append(
        Check(
            OK if path.is_file() else INFO, "config file", f"{path}" + ("" if path.is_file() else " (none)")
        )
    )
    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    writable = os.access(home, os.W_OK)
    checks.append(
        Check(
            OK if writable else FAIL, "WORKBENCH_HOME", f"{home}" + ("" if writable else " is not writable")
        )
    )
    return checks


def _store(settings: Settings) -> list[Check]:
    from .repair import unknown
    from .store import Store

    try:
        store = Store(settings.db_path)
    except StoreError as exc:
        return [Check(FAIL, "store", exc.one_line())]
    try:
        problem = store.check()
        missing = unknown(store, settings.runs_dir)
    except StoreError as exc:
        return [Check(FAIL, "store", exc.one_line())]
    finally:
        store.close()
    if problem:
        detail = f"{settings.db_path} is corrupt ({problem}) — run `workbench doctor --repair`"
        return [Check(FAIL, "store", detail)]
    checks = [Check(OK, "store", f"{settings.db_path}" + (" (read-only)" if store.read_only else ""))]
    if missing:
        names = ", ".join(w.id for w in missing[:5]) + (", …" if len(missing) > 5 else "")
        detail = f"{len(missing)} without a record ({names}) — run `workbench doctor --repair`"
        checks.append(Check(WARN, "run directories", detail))
    return checks


def run_checks(service: Service) -> list[Check]:
    """Every check: the config and the store, then each backend's own (the local one first)."""
    settings = service.settings
    return _config(settings) + _store(settings) + service.diagnose()


def repair(settings: Settings) -> list[str]:
    """``workbench doctor --repair``: a corrupt store moved aside and made new, and a record
    rebuilt for every run directory the store does not know. One line per thing done."""
    from .repair import move_aside, rebuild
    from .store import Store

    done = []
    store: Store | None = None
    try:
        store = Store(settings.db_path)
        problem = store.check()
    except StoreError as exc:
        if exc.reason != "corrupt":
            raise
        problem = exc.message
    if problem or store is None:
        if store is not None:
            store.close()
        aside = move_aside(settings.db_path)
        done.append(f"moved the corrupt store aside to {aside} ({problem})")
        store = Store(settings.db_path)
    try:
        store.claim_rebuild()  # this rebuild is the one a new file asks for
        rebuilt = rebuild(store, settings.runs_dir)
    finally:
        store.close()
    if rebuilt:
        names = ", ".join(w.id for w in rebuilt)
        done.append(f"rebuilt {len(rebuilt)} record(s) from their run directories: {names}")
    else:
        done.append("every run directory has its record; nothing to rebuild")
    return done
