"""``workbench mlflow ui``: MLflow's own UI on the tracking store of this machine, on loopback.

The store is the one tracked runs go to (:mod:`workbench.tracking`): by default the embedded
SQLite store under ``WORKBENCH_HOME``. A tracking server has a UI of its own: the command
names it instead of starting another.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .options import ArgumentParser, value_type

if TYPE_CHECKING:
    from .service import Service


def _port(text: str) -> int:
    if not (text.strip().isascii() and text.strip().isdigit()) or not 1 <= int(text) <= 65535:
        raise ValueError(f"{text!r} must be a TCP port, 1 to 65535")
    return int(text)


def add_parser(sub: Any) -> None:
    from .tracking import UI_PORT

    mlflow = sub.add_parser("mlflow", help="MLflow tracking of workloads (--track): its UI")
    actions = mlflow.add_subparsers(
        dest="mlflow_command", required=True, metavar="ACTION", parser_class=ArgumentParser
    )
    ui = actions.add_parser("ui", help="start MLflow's UI on this machine's tracking store (127.0.0.1)")
    ui.add_argument("--port", type=value_type(_port, "port"), default=UI_PORT, help=f"default {UI_PORT}")
    mlflow.set_defaults(handler=run)


def ui_argv(uri: str, artifacts: Path | None, port: int) -> list[str]:
    """The command that serves MLflow's UI for the store ``uri`` on 127.0.0.1:``port``."""
    found = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or shutil.which("mlflow")
    argv = [found] if found else [sys.executable, "-m", "mlflow"]
    argv += ["ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    if artifacts is not None:
        argv += ["--default-artifact-root", artifacts.as_uri()]
    return argv


def run(service: Service, args: argparse.Namespace) -> int:
    from .private import create_private, private_dir
    from .tracking import artifact_root, require_mlflow, shown_uri, target

    require_mlflow("workbench mlflow ui")
    settings = service.settings
    where = target(settings, track=True)
    assert where is not None
    if where.uri.startswith(("http://", "https://", "databricks")):
        print(f"workbench: runs are tracked by the MLflow server at {shown_uri(where.uri)}; its UI is there")
        return 0
    artifacts = None
    if where.embedded:  # private, as when the first run is tracked
        artifacts = private_dir(artifact_root(settings.home))
        create_private(settings.home / "mlflow.db")
    print(
        f"workbench: MLflow UI of {shown_uri(where.uri)} at http://127.0.0.1:{args.port} (Ctrl-C stops it)",
        file=sys.stderr,
        flush=True,
    )
    try:
        return subprocess.call(ui_argv(where.uri, artifacts, args.port))
    except KeyboardInterrupt:
        return 130
