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
from typing import Any

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


# -- helpers of the panel list and accessibility tests (test_panel_list.py, test_a11y.py) --------

AXE = REPO / "labextension" / "node_modules" / "axe-core" / "axe.min.js"


@contextmanager
def module_lab(tmp: Path) -> Iterator[tuple[Lab, Path]]:
    """One `jupyter lab` for a whole test module, on a WORKBENCH_HOME of its own (``tmp/wbhome``).

    Yields the Lab and its home; the per-test WORKBENCH_HOME of tests/conftest.py does not
    reach this Lab, so records for it go to the returned home (see ``insert_workloads``).
    """
    home = tmp / "wbhome"
    saved = dict(os.environ)
    try:
        for key in list(os.environ):
            if key.startswith(("WORKBENCH_", "MLFLOW_")):
                del os.environ[key]
        os.environ["WORKBENCH_HOME"] = str(home)
        os.environ["WORKBENCH_CONFIG"] = str(tmp / "absent-config.yaml")
        os.environ["WORKBENCH_KILL_GRACE"] = "2"
        os.environ["PATH"] = f"{BIN}{os.pathsep}{saved.get('PATH', '')}"
        with start_lab(tmp) as lab:
            yield lab, home
    finally:
        os.environ.clear()
        os.environ.update(saved)


def insert_workloads(home: Path, records: list[dict[str, object]]) -> None:
    """Write finished records straight into the store of ``home`` (no process is started).

    Each dict gives ``id`` and optionally ``kind``, ``status``, ``created``, ``started``,
    ``ended``, ``spec``, ``exit_code``, ``message``.
    """
    from workbench.store import Store, Workload

    store = Store(home / "workbench.db")  # Settings.db_path
    runs = home / "runs"
    try:
        for data in records:
            name = str(data["id"])
            kind = str(data.get("kind", "pod"))
            created = float(data.get("created", time.time()))  # type: ignore[arg-type]
            store.insert(
                Workload(
                    id=name,
                    kind=kind,
                    backend="local",
                    status=str(data.get("status", "succeeded")),
                    spec=dict(data.get("spec", {"kind": kind})),  # type: ignore[call-overload]
                    run_dir=str(runs / name),
                    created=created,
                    started=data.get("started", created + 1),  # type: ignore[arg-type]
                    ended=data.get("ended", created + 6),  # type: ignore[arg-type]
                    exit_code=data.get("exit_code"),  # type: ignore[arg-type]
                    message=str(data.get("message", "")),
                )
            )
    finally:
        store.close()


def open_panel(page: object, lab: Lab) -> None:
    """Load the Lab page and open the Workbench panel (whether or not the layout restored it)."""
    from playwright import sync_api

    assert isinstance(page, sync_api.Page)
    page.goto(f"{lab.url}/lab?token={lab.token}")
    tab = page.locator('.jp-SideBar .lm-TabBar-tab[data-id="workbench-panel"]')
    sync_api.expect(tab).to_be_visible(timeout=60_000)
    # Lab focuses its current main-area widget once restored: wait for that, so neither the
    # restored layout nor that focus undoes what the test does next
    page.wait_for_function("() => document.activeElement && document.activeElement !== document.body")
    page.wait_for_timeout(300)
    header = page.locator("#workbench-panel .jp-WorkbenchPanel-header")
    for _ in range(3):
        if header.is_visible():
            break
        tab.click()
        page.wait_for_timeout(300)
    sync_api.expect(header).to_have_text("Workbench")


def axe_violations(page: object, include: str) -> list[dict[str, object]]:
    """Run axe-core on the elements matching ``include``; its serious and critical violations."""
    from playwright import sync_api

    assert isinstance(page, sync_api.Page)
    assert AXE.exists(), f"{AXE} is missing: `jlpm install` in labextension installs axe-core"
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """async (include) => {
            const r = await window.axe.run({ include: [include] }, { resultTypes: ['violations'] });
            return r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,
              nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' :: ' + n.failureSummary) }));
        }""",
        include,
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


# -- helpers of the detail view and batch dialog tests (test_detail.py, test_batch_dialog.py) ----


def api_post(lab: Lab, path: str, body: object) -> tuple[int, dict[str, object]]:
    """POST JSON to the Lab's server (the token authenticates; no XSRF cookie is needed)."""
    request = urllib.request.Request(
        f"{lab.url}/{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"token {lab.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read().decode() or "{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read().decode() or "{}")


def cancel_active(lab: Lab) -> None:
    """Cancel whatever still runs on the Lab's server (a module's teardown)."""
    status, body = lab.api("workbench/api/workloads")
    if status != 200:
        return
    for workload in json.loads(body)["workloads"]:
        if workload["status"] in ("pending", "running"):
            api_post(lab, f"workbench/api/workloads/{workload['name']}/cancel", {})


def notebook_json(*cells: tuple[str, str, list[str]]) -> str:
    """An nbformat 4 notebook of code cells given as (id, source, tags)."""
    return json.dumps(
        {
            "cells": [
                {
                    "cell_type": "code",
                    "execution_count": None,
                    "id": cell_id,
                    "metadata": {"tags": tags},
                    "outputs": [],
                    "source": source,
                }
                for cell_id, source, tags in cells
            ],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )


@contextmanager
def chromium_page(*, clipboard_origin: str | None = None) -> Iterator[Any]:
    """A page of Debian's Chromium (headless, 1440 by 900), driven by Playwright; closed after.
    ``clipboard_origin``: grant that origin clipboard access."""
    from playwright import sync_api

    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `make chromium` installs it"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            if clipboard_origin is not None:
                context.grant_permissions(["clipboard-read", "clipboard-write"], origin=clipboard_origin)
            yield context.new_page()
        finally:
            browser.close()


def fill_form(dialog: Any, values: dict[str, str]) -> None:
    """Fill a launch dialog's fields and check each took its value.

    Once open, the dialog keeps the focus inside itself: a focus that lands outside it (the
    launch menu closing, the list behind it) sends the focus back to its first field, and a
    value typed at that instant lands there. A person types after the dialog has settled; a
    test does not wait, so a value that went astray is filled again (``fill`` replaces).
    """
    for _ in range(3):
        for selector, text in values.items():
            dialog.locator(selector).fill(text)
        if all(dialog.locator(selector).input_value() == text for selector, text in values.items()):
            return
    seen = {selector: dialog.locator(selector).input_value() for selector in values}
    raise AssertionError(f"the form did not keep its values: {seen}")
