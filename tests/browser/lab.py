"""A real `jupyter lab` with the workbench extension, for the browser tests and benchmark B8."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
BUILT = REPO / "workbench" / "labextension" / "package.json"


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path

    def api(self, path: str) -> tuple[int, str]:
        request = urllib.request.Request(
            f"{self.url}/{path}", headers={"Authorization": f"token {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


@contextmanager
def start_lab(tmp_path: Path, settings: dict[str, dict[str, object]] | None = None) -> Iterator[Lab]:
    """`jupyter lab` on a free loopback port, with the workbench server extension enabled.

    It runs on the caller's WORKBENCH_HOME and WORKBENCH_CONFIG. ``settings`` are overrides
    of plugins' defaults (plugin id → settings), as an admin's ``overrides.json`` sets them.
    """
    assert BUILT.exists(), "the labextension is not built: run `make install`"
    port, token = free_port(), secrets.token_hex(16)
    root = tmp_path / "root"
    root.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "jupyter-config"
    enable = {"ServerApp": {"jpserver_extensions": {"workbench.server": True}}}
    write_json(config / "jupyter_server_config.json", enable)
    app_settings = tmp_path / "lab-app-settings"
    write_json(
        app_settings / "overrides.json",
        {
            "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
            **(settings or {}),
        },
    )
    env = {
        **os.environ,  # WORKBENCH_HOME and WORKBENCH_CONFIG from tests/conftest.py
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
        "WORKBENCH_BACKEND": "local",
    }
    command = [
        str(BIN / "jupyter"),
        "lab",
        "--allow-root",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.app_settings_dir={app_settings}",
        f"--LabApp.user_settings_dir={tmp_path / 'lab-user-settings'}",
        f"--LabApp.workspaces_dir={tmp_path / 'lab-workspaces'}",
    ]
    log = tmp_path / "jupyter-lab.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    server = Lab(url=f"http://127.0.0.1:{port}", token=token, root=root, log=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"jupyter lab exited {process.returncode}:\n{log.read_text()}"
            try:
                if server.api("api/status")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"jupyter lab did not answer in 60 s:\n{log.read_text()}"
            time.sleep(0.2)
        status, body = server.api("workbench/api/backends")
        assert status == 200, f"workbench server extension down ({status} {body}):\n{log.read_text()}"
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
