"""The Workbench sidebar in a real JupyterLab, driven through Debian's Chromium by Playwright.

One test walks the page the way a user does, without ever reloading it: open the panel, launch
a pod from its form, watch it turn succeeded, read its logs, delete it, and see a workload
launched from the CLI appear by itself (server events, not polling). Each step saves a
screenshot under the test's tmp dir; the paths are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright import sync_api

from workbench.service import Service

from .lab import Lab, chromium_page, fill_form, start_lab

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def lab(tmp_path: Path, service: Service) -> Iterator[Lab]:
    """`jupyter lab` for one test, on its WORKBENCH_HOME; ``service`` cleans up after it."""
    with start_lab(tmp_path) as server:
        print(f"\njupyter lab log: {server.log}")
        yield server


@pytest.fixture
def page(lab: Lab, tmp_path: Path) -> Iterator[sync_api.Page]:
    with chromium_page() as page:
        yield page


class Shots:
    """Numbered screenshots under the test's tmp dir."""

    def __init__(self, page: sync_api.Page, folder: Path) -> None:
        self.page, self.folder, self.count = page, folder, 0
        folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, step: str) -> None:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{step}.png"
        self.page.screenshot(path=str(path))
        print(f"screenshot: {path}")


def row(page: sync_api.Page, name: str) -> sync_api.Locator:
    return page.locator(f'.jp-WorkbenchPanel-row[data-workload="{name}"]')


def launch(page: sync_api.Page, label: str) -> None:
    """Pick a kind from the panel's "Launch…" menu button."""
    page.locator("#workbench-panel").get_by_role("button", name="Launch…").click()
    page.locator(".jp-WorkbenchPanel-launchMenu .lm-Menu-item", has_text=label).click()


def confirm_cancel(page: sync_api.Page) -> None:
    dialog = page.locator(".jp-Dialog")
    sync_api.expect(dialog.locator(".jp-Dialog-header")).to_contain_text("Cancel ")
    dialog.locator(".jp-Dialog-footer button", has_text="Cancel workload").click()


def test_sidebar_launch_follow_logs_delete_and_cli(lab: Lab, page: sync_api.Page, tmp_path: Path) -> None:
    expect = sync_api.expect
    shot = Shots(page, tmp_path / "screenshots")
    listings: list[str] = []

    def count_listing(request: sync_api.Request) -> None:
        if request.method == "GET" and request.url.split("?")[0].endswith("/workbench/api/workloads"):
            listings.append(request.url)

    page.on("request", count_listing)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    # 1. open the panel from its tab in the left sidebar
    page.goto(f"{lab.url}/lab?token={lab.token}")
    tab = page.locator('.jp-SideBar .lm-TabBar-tab[data-id="workbench-panel"]')
    expect(tab).to_be_visible(timeout=60_000)
    tab.click()
    panel = page.locator("#workbench-panel")
    expect(panel.locator(".jp-WorkbenchPanel-header")).to_have_text("Workbench")
    expect(panel.get_by_label("Kind").locator('option[value="pod"]')).to_have_text("Pods")
    shot("panel")

    # 2. launch a pod from its form; a bad value comes back as the server's message, form kept
    launch(page, "Pod")
    dialog = page.locator(".jp-Dialog")
    expect(dialog.locator(".jp-Dialog-header")).to_contain_text("Launch pod")
    expect(dialog.locator("#root_code")).to_be_visible()
    shot("launch-form")
    # the dialog focuses its first field once its form has rendered: typing waits for that
    expect(dialog.locator("#root_name")).to_be_focused(timeout=10_000)
    code = "import time\ntime.sleep(1)\nprint('hello from the sidebar')\n"
    fill_form(dialog, {"#root_name": "sidebar-pod", "#root_code": code, "#root_resources_cpu": "two cores"})
    dialog.locator(".jp-Dialog-footer button", has_text="Launch").click()
    error = page.locator(".jp-Dialog .jp-WorkbenchLaunch-error")
    expect(error).to_contain_text("two cores", timeout=15_000)
    expect(dialog.locator("#root_name")).to_have_value("sidebar-pod")
    shot("launch-error")
    dialog.locator("#root_resources_cpu").fill("1")
    dialog.locator(".jp-Dialog-footer button", has_text="Launch").click()
    expect(dialog).to_have_count(0)

    # 3. it appears, then turns succeeded, without a reload
    pod = row(page, "sidebar-pod")
    expect(pod).to_be_visible(timeout=15_000)
    expect(pod.locator(".jp-WorkbenchPanel-resources")).to_have_text("1 CPU")
    shot("launched")
    expect(pod).to_have_attribute("data-status", "succeeded", timeout=60_000)
    expect(pod.locator(".jp-WorkbenchPanel-status")).to_have_text("succeeded")
    shot("succeeded")

    # 4. its logs open in the main area with its output
    pod.locator('button[aria-label="Logs of sidebar-pod"]').click()
    logs = page.locator(".jp-WorkbenchLogs-text")
    expect(logs).to_contain_text("hello from the sidebar", timeout=30_000)
    expect(page.locator(".jp-WorkbenchLogs-state")).to_have_text("end of log", timeout=30_000)
    shot("logs")

    # 5. delete it (confirming) and it goes
    pod.locator('button[aria-label="Delete sidebar-pod"]').click()
    expect(dialog.locator(".jp-Dialog-header")).to_contain_text("Delete sidebar-pod?")
    shot("delete-confirm")
    dialog.locator(".jp-Dialog-footer button", has_text="Delete").click()
    expect(pod).to_have_count(0, timeout=15_000)
    status, _ = lab.api("workbench/api/workloads/sidebar-pod")
    assert status == 404
    shot("deleted")

    # 6. a workload launched from the CLI meanwhile shows up by itself
    script = tmp_path / "x.py"
    script.write_text("print('from the cli')\n")
    run = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "run", str(script), "--detach"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    name = run.stdout.strip().splitlines()[-1].strip()
    cli = row(page, name)
    expect(cli).to_be_visible(timeout=30_000)
    expect(cli).to_have_attribute("data-status", "succeeded", timeout=60_000)
    shot("cli-workload")

    # 7. "Run as batch job…" on a notebook in the file browser opens the batch dialog; Run runs it
    # and its row turns succeeded
    notebook = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": "c1", "metadata": {}, "outputs": [],
             "source": "print('batch ok')"},
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }  # fmt: skip
    (lab.root / "analysis.ipynb").write_text(json.dumps(notebook))
    page.locator('.jp-SideBar .lm-TabBar-tab[data-id="filebrowser"]').click()
    item = page.locator('.jp-DirListing-item[data-file-type="notebook"]', has_text="analysis.ipynb")
    expect(item).to_be_visible(timeout=15_000)
    item.click(button="right")
    page.locator(".lm-Menu-item", has_text="Run as batch job…").click()
    page.locator(".jp-Dialog .jp-Dialog-footer button", has_text="Run").click()
    page.locator('.jp-SideBar .lm-TabBar-tab[data-id="workbench-panel"]').click()
    batch = page.locator('.jp-WorkbenchPanel-row[data-kind="notebook"]').first
    expect(batch).to_be_visible(timeout=30_000)
    expect(batch).to_have_attribute("data-status", "succeeded", timeout=90_000)
    shot("run-as-batch-job")

    # 8. the palette lists the Workbench commands; the Dask form opens from there
    page.keyboard.press("Control+Shift+C")
    palette = page.locator(".lm-CommandPalette-input")
    expect(palette).to_be_focused()
    palette.fill("Workbench:")
    items = page.locator(".lm-CommandPalette-item", has_text="Workbench:")
    expect(items).to_have_count(7)
    page.locator(".lm-CommandPalette-item", has_text="Launch Dask cluster").click()
    expect(dialog.locator(".jp-Dialog-header")).to_contain_text("Launch Dask cluster")
    expect(dialog.locator("#root_workers")).to_be_visible()
    shot("dask-form")
    dialog.locator(".jp-Dialog-footer button", has_text="Cancel").click()
    expect(dialog).to_have_count(0)

    # the page listed workloads once, at start; everything after came as events
    print(f"listings: {listings}")
    assert len(listings) == 1, listings
    assert errors == []


def test_dask_row_scale_dashboard_cancel(lab: Lab, page: sync_api.Page, tmp_path: Path) -> None:
    """A Dask cluster launched from its form: its row offers the dashboard, scale and cancel."""
    expect = sync_api.expect
    shot = Shots(page, tmp_path / "screenshots")
    page.goto(f"{lab.url}/lab?token={lab.token}")
    tab = page.locator('.jp-SideBar .lm-TabBar-tab[data-id="workbench-panel"]')
    expect(tab).to_be_visible(timeout=60_000)
    tab.click()

    launch(page, "Dask cluster")
    dialog = page.locator(".jp-Dialog")
    expect(dialog.locator(".jp-Dialog-header")).to_contain_text("Launch Dask cluster")
    expect(dialog.locator("#root_name")).to_be_focused(timeout=10_000)  # its first field: see above
    fill_form(dialog, {"#root_name": "sidebar-dask", "#root_workers": "1"})
    dialog.locator(".jp-Dialog-footer button", has_text="Launch").click()
    expect(dialog).to_have_count(0)

    cluster = row(page, "sidebar-dask")
    expect(cluster).to_have_attribute("data-status", "running", timeout=60_000)
    expect(cluster.locator(".jp-WorkbenchPanel-resources")).to_have_text("1 worker")
    shot("dask-running")

    cluster.locator('button[aria-label="Scale sidebar-dask"]').click()
    expect(dialog.locator(".jp-Dialog-header")).to_contain_text("Scale sidebar-dask")
    dialog.locator("input").fill("2")
    shot("dask-scale")
    dialog.locator(".jp-Dialog-footer button", has_text="Scale").click()
    expect(cluster.locator(".jp-WorkbenchPanel-resources")).to_have_text("2 workers", timeout=30_000)

    # The dashboard address reaches the record's info after the cluster turned running, and
    # the server emits events for status changes only, so the link arrives with the next
    # fetch of the record: here the answer to the scale request.
    dashboard = cluster.locator('button[aria-label="Dashboard of sidebar-dask"]')
    expect(dashboard).to_be_visible(timeout=30_000)
    shot("dask-scaled")
    with page.expect_popup() as popup:
        dashboard.click()
    board = popup.value
    # through the Jupyter server (jupyter-server-proxy), so it works wherever the page does
    assert board.url.startswith(f"{lab.url}/proxy/") and board.url.endswith("/status"), board.url
    expect(board).to_have_title(re.compile("Dask"), timeout=30_000)
    board.screenshot(path=str(tmp_path / "screenshots" / "dask-dashboard.png"))
    board.close()

    # the dashboard's own plots open in Lab tabs, framed through the same proxy; bokeh draws
    plots = cluster.locator(".jp-WorkbenchPanel-daskPlots button")
    expect(plots).to_have_text(["Task stream", "Progress", "Workers memory"])
    plots.filter(has_text="Task stream").click()
    frame = page.locator(".jp-WorkbenchDaskPlot iframe")
    expect(frame).to_have_attribute("src", re.compile(r"/proxy/\d+/individual-task-stream$"), timeout=15_000)
    assert (frame.get_attribute("src") or "").startswith(f"{lab.url}/proxy/")
    expect(page.frame_locator(".jp-WorkbenchDaskPlot iframe").locator("canvas").first).to_be_attached(
        timeout=30_000
    )
    shot("dask-task-stream")

    # its logs: the scheduler's and workers' output, following while it runs
    cluster.locator('button[aria-label="Logs of sidebar-dask"]').click()
    expect(page.locator(".jp-WorkbenchLogs-text").last).to_contain_text(
        "distributed.scheduler", timeout=30_000
    )
    shot("dask-logs")

    cluster.locator('button[aria-label="Cancel sidebar-dask"]').click()
    confirm_cancel(page)
    expect(cluster).to_have_attribute("data-status", "cancelled", timeout=60_000)
    expect(cluster.locator('button[aria-label="Scale sidebar-dask"]')).to_have_count(0)
    expect(dashboard).to_have_count(0)
    shot("dask-cancelled")

    # delete it and see it go
    cluster.locator('button[aria-label="Delete sidebar-dask"]').click()
    confirm = page.locator(".jp-Dialog")
    expect(confirm.locator(".jp-Dialog-header")).to_contain_text("Delete")
    confirm.locator(".jp-Dialog-footer button", has_text="Delete").click()
    expect(cluster).to_have_count(0, timeout=15_000)
    shot("dask-deleted")


def test_serve_row_url_revision_canary_promote_undo_scale(
    lab: Lab, page: sync_api.Page, tmp_path: Path, service: Service
) -> None:
    """A model served from its form: the row shows the endpoint, its revision and canary, and
    offers promote, undo and scale; rollouts made elsewhere (here: the service) show by themselves."""
    expect = sync_api.expect
    shot = Shots(page, tmp_path / "screenshots")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{lab.url}/lab?token={lab.token}")
    tab = page.locator('.jp-SideBar .lm-TabBar-tab[data-id="workbench-panel"]')
    expect(tab).to_be_visible(timeout=60_000)
    tab.click()
    panel = page.locator("#workbench-panel")
    expect(panel.get_by_label("Kind").locator('option[value="serve"]')).to_have_text("Model endpoints")

    launch(page, "Serve a model…")
    dialog = page.locator(".jp-Dialog")
    expect(dialog.locator(".jp-Dialog-header")).to_contain_text("Serve a model")
    code = dialog.locator("#root_code")
    expect(code).to_have_attribute("placeholder", re.compile("def predict"))
    expect(dialog.locator("#root_name")).to_be_focused(timeout=10_000)  # its first field: see above
    fill_form(
        dialog, {"#root_name": "sidebar-model", "#root_code": "def predict(inputs):\n    return inputs\n"}
    )
    shot("serve-form")
    dialog.locator(".jp-Dialog-footer button", has_text="Serve").click()
    expect(dialog).to_have_count(0)

    model = row(page, "sidebar-model")
    expect(model).to_have_attribute("data-status", "running", timeout=60_000)
    url = model.locator("a.jp-WorkbenchPanel-url")
    expect(url).to_have_text(re.compile(r"^http://127\.0\.0\.1:\d+$"), timeout=60_000)
    assert url.get_attribute("href") == service.get("sidebar-model").info["url"]
    expect(model.locator(".jp-WorkbenchPanel-revision")).to_have_text("revision 1", timeout=60_000)
    expect(model.locator(".jp-WorkbenchPanel-replicas")).to_have_text("1/1 ready")
    expect(model.locator(".jp-WorkbenchPanel-rps")).to_have_text(re.compile(r"req/s$"))
    promote = model.locator('button[aria-label="Promote canary of sidebar-model"]')
    expect(promote).to_have_count(0)
    shot("serving")

    # a canary rolled out from elsewhere shows in the row, with a button to promote it
    service.rollout("sidebar-model", {"code": "def predict(inputs):\n    return inputs * 2\n", "canary": 50})
    revision = model.locator(".jp-WorkbenchPanel-revision")
    expect(revision).to_have_text("revision 1 · canary 2 at 50%", timeout=60_000)
    shot("canary")
    promote.click()
    expect(revision).to_have_text("revision 2", timeout=60_000)
    expect(promote).to_have_count(0)

    model.locator('button[aria-label="Undo rollout of sidebar-model"]').click()
    expect(revision).to_have_text("revision 3", timeout=60_000)
    assert service.predict("sidebar-model", [[1.0]]).tolist() == [[1.0]]
    shot("undone")

    model.locator('button[aria-label="Scale replicas of sidebar-model"]').click()
    expect(dialog.locator(".jp-Dialog-header")).to_contain_text("Scale sidebar-model")
    dialog.locator("input").fill("2")
    dialog.locator(".jp-Dialog-footer button", has_text="OK").click()
    expect(model.locator(".jp-WorkbenchPanel-replicas")).to_have_text("2/2 ready", timeout=60_000)
    shot("scaled")

    model.locator('button[aria-label="Cancel sidebar-model"]').click()
    confirm_cancel(page)
    expect(model).to_have_attribute("data-status", "cancelled", timeout=60_000)
    expect(model.locator('button[aria-label="Undo rollout of sidebar-model"]')).to_have_count(0)
    expect(url).to_have_count(0)  # a stopped endpoint's address is no longer offered
    assert errors == []
