"""The detail view of a workload, its outputs, its log tab and Dask plots, in a real JupyterLab.

One Lab serves the whole module (``module_lab``); its workloads are launched over REST, so the
page learns of them from server events, and opened from their rows in the panel.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright import sync_api

from .lab import (
    Lab,
    api_post,
    axe_violations,
    cancel_active,
    chromium_page,
    module_lab,
    notebook_json,
    open_panel,
)

pytestmark = pytest.mark.timeout(300)
expect = sync_api.expect

FAILING = "print('step 1 ok')\nprint('step 2 ok')\nraise ValueError('boom')\n"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with module_lab(tmp_path_factory.mktemp("detail")) as (server, _home):
        print(f"\njupyter lab log: {server.log}")
        try:
            yield server
        finally:
            cancel_active(server)


@pytest.fixture(scope="module")
def page(lab: Lab) -> Iterator[sync_api.Page]:
    with chromium_page(clipboard_origin=lab.url) as page:
        open_panel(page, lab)
        yield page


def launch(lab: Lab, spec: dict[str, object]) -> str:
    status, body = api_post(lab, "workbench/api/workloads", spec)
    assert status == 201, body
    return str(body["name"])


def open_detail(page: sync_api.Page, name: str) -> sync_api.Locator:
    """Open the workload's row in the panel (focus and Enter); its detail tab comes to the front."""
    row = page.locator(f'.jp-WorkbenchPanel-row[data-workload="{name}"]')
    expect(row).to_be_visible(timeout=30_000)
    row.focus()
    row.press("Enter")
    detail = page.locator(f'.jp-WorkbenchDetail[aria-label="Details of {name}"]')
    expect(detail).to_be_visible(timeout=15_000)
    return detail


def test_failed_pod_detail_logs_search_and_cancel_confirmation(lab: Lab, page: sync_api.Page) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    launch(lab, {"kind": "pod", "name": "detail-pod", "code": FAILING})
    detail = open_detail(page, "detail-pod")

    # a finished pod: its status with the exit code, timings and duration, history and reason
    status = detail.locator(".jp-WorkbenchDetail-status")
    expect(status).to_have_text("failed (1)", timeout=60_000)
    expect(status).to_have_attribute("aria-live", "polite")
    expect(detail.locator(".jp-WorkbenchDetail-exit")).to_have_text("1")
    expect(detail.locator(".jp-WorkbenchDetail-duration")).to_have_text(re.compile(r"^\d+(\.\d+)?s$|^\d+m"))
    expect(detail.locator("dt", has_text="Duration")).to_have_count(1)
    history = detail.locator(".jp-WorkbenchDetail-history tbody tr")
    expect(history).to_have_count(3)
    expect(history.last).to_have_attribute("data-status", "failed")
    expect(detail.locator(".jp-WorkbenchDetail-rundir code")).to_contain_text("detail-pod")
    actions = detail.locator(".jp-WorkbenchDetail-actions button")
    expect(actions.filter(has_text="Re-run")).to_have_attribute("aria-label", "Re-run detail-pod")
    expect(actions.filter(has_text="Cancel")).to_have_count(0)
    assert axe_violations(page, '.jp-WorkbenchDetail[aria-label="Details of detail-pod"]') == []

    # its logs: search with highlights and next, jump to the first error
    detail.locator('button[aria-label="Open logs detail-pod"]').click()
    logs = page.locator('.jp-WorkbenchLogs[aria-label="Logs of detail-pod"]')
    expect(logs.locator(".jp-WorkbenchLogs-state")).to_have_text("end of log", timeout=30_000)
    search = logs.locator('input[aria-label="Search the log of detail-pod"]')
    search.fill("ok")
    expect(logs.locator("mark")).to_have_count(2)
    expect(logs.locator(".jp-WorkbenchLogs-count")).to_have_text("1 of 2")
    expect(logs.locator("mark.jp-mod-current")).to_have_count(1)
    search.press("Enter")
    expect(logs.locator(".jp-WorkbenchLogs-count")).to_have_text("2 of 2")
    logs.locator('button[aria-label="Jump to the first error in the log of detail-pod"]').click()
    expect(logs.locator("mark.jp-WorkbenchLogs-errorLine")).to_have_text(re.compile(r"^Traceback"))
    wrap = logs.locator('button[aria-label="Wrap the lines of the log of detail-pod"]')
    wrap.click()
    expect(wrap).to_have_attribute("aria-pressed", "true")
    expect(logs.locator(".jp-WorkbenchLogs-text")).to_have_class(re.compile("jp-mod-wrap"))
    with page.expect_download() as download:
        logs.locator('button[aria-label="Download the log of detail-pod"]').click()
    assert download.value.suggested_filename == "detail-pod.log"
    assert "ValueError: boom" in Path(download.value.path()).read_text()

    # re-run: a new workload from the same spec, whose detail tab opens by itself
    open_detail(page, "detail-pod").locator('button[aria-label="Re-run detail-pod"]').click()
    again = page.locator(".jp-WorkbenchDetail:visible")
    expect(again).not_to_have_attribute("aria-label", "Details of detail-pod", timeout=30_000)
    expect(again.locator(".jp-WorkbenchDetail-status")).to_have_text("failed (1)", timeout=60_000)

    # a running pod: Cancel asks first; "Keep running" keeps it, confirming cancels it
    launch(lab, {"kind": "pod", "name": "detail-sleeper", "code": "import time\ntime.sleep(120)\n"})
    sleeper = open_detail(page, "detail-sleeper")
    expect(sleeper.locator(".jp-WorkbenchDetail-status")).to_have_text("running", timeout=60_000)
    cancel = sleeper.locator('button[aria-label="Cancel detail-sleeper"]')
    cancel.click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog.locator(".jp-Dialog-header")).to_contain_text("Cancel detail-sleeper?")
    dialog.locator("button", has_text="Keep running").click()
    expect(dialog).to_have_count(0)
    assert json.loads(lab.api("workbench/api/workloads/detail-sleeper")[1])["status"] == "running"
    cancel.click()
    dialog.locator("button", has_text="Cancel workload").click()
    expect(sleeper.locator(".jp-WorkbenchDetail-status")).to_have_text("cancelled", timeout=60_000)
    expect(cancel).to_have_count(0)
    assert errors == []


def test_notebook_run_outputs_listed_downloadable_and_opened_in_lab(lab: Lab, page: sync_api.Page) -> None:
    (lab.root / "report.ipynb").write_text(
        notebook_json(("c1", "import json, pathlib\nprint('report ' + 'ready')\n", []))
    )
    name = launch(lab, {"kind": "notebook", "name": "detail-nb", "notebook": "report.ipynb"})
    detail = open_detail(page, name)
    expect(detail.locator(".jp-WorkbenchDetail-status")).to_have_text("succeeded", timeout=90_000)

    # provenance.json is listed with a download link that works with the page's credentials
    provenance = detail.locator('.jp-WorkbenchDetail-file[data-path="provenance.json"] a')
    expect(provenance).to_be_visible(timeout=15_000)
    expect(provenance).to_have_attribute("aria-label", f"Download provenance.json of {name}")
    href = provenance.get_attribute("href") or ""
    assert href.endswith(f"/workbench/api/workloads/{name}/files/provenance.json"), href
    reply = page.request.get(href)
    assert reply.status == 200
    assert "attachment" in (reply.headers.get("content-disposition") or "")
    assert isinstance(json.loads(reply.body()), dict)
    detail.locator(f'button[aria-label="Open provenance.json of {name} in Lab"]').click()
    tabs = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab")
    expect(tabs.filter(has_text="provenance.json")).to_have_count(1, timeout=30_000)
    open_detail(page, name)

    # the executed notebook opens in Lab, read-only, from the run directory (outside the root)
    detail.locator(f'button[aria-label="Open output notebook {name}"]').click()
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="output.ipynb")
    expect(tab).to_be_visible(timeout=30_000)
    notebook = page.locator(".jp-NotebookPanel:visible")
    expect(notebook.locator(".jp-OutputArea-output").first).to_contain_text("report ready", timeout=30_000)
    assert not (lab.root / "output.ipynb").exists()


def test_dask_detail_adapt_copy_client_and_docked_plot_restored_after_reload(
    lab: Lab, page: sync_api.Page
) -> None:
    launch(lab, {"kind": "dask", "name": "detail-dask", "workers": 1})
    detail = open_detail(page, "detail-dask")
    expect(detail.locator(".jp-WorkbenchDetail-status")).to_have_text("running", timeout=60_000)
    scheduler = detail.locator(".jp-WorkbenchDetail-scheduler")
    expect(scheduler).to_have_text(re.compile(r"^tcp://"), timeout=30_000)
    address = scheduler.inner_text()

    # copy client code → the clipboard holds a line connecting to this scheduler
    detail.locator('button[aria-label="Copy client code of detail-dask"]').click()
    expect(page.locator(".jp-toast-message", has_text="Copied the client code")).to_be_visible(timeout=10_000)
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied == f'from dask.distributed import Client; client = Client("{address}")'

    # adapt with a bad range names it; a good one reaches the record
    adapt = detail.locator('input[aria-label="Adaptive worker range of detail-dask"]')
    adapt.fill("3:1")
    adapt.press("Enter")
    expect(detail.locator(".jp-WorkbenchDetail-adapt [role=alert]")).to_contain_text("not below the minimum")
    expect(adapt).to_have_attribute("aria-invalid", "true")
    adapt.fill("1:2")
    detail.locator('button[aria-label="Adapt detail-dask"]').click()
    resources = detail.locator(".jp-WorkbenchDetail-resources")
    expect(resources).to_have_text("1\N{EN DASH}2 workers", timeout=30_000)

    # the task stream docks as a Lab main-area widget, framed through the server's proxy
    plot = detail.locator('button[data-plot="task-stream"]')
    expect(plot).to_be_visible(timeout=30_000)
    plot.click()
    frame = page.locator("#jp-main-dock-panel .jp-WorkbenchDaskPlot iframe")
    expect(frame).to_have_attribute("src", re.compile(r"/proxy/\d+/individual-task-stream$"), timeout=15_000)
    expect(page.frame_locator(".jp-WorkbenchDaskPlot iframe").locator("canvas").first).to_be_attached(
        timeout=30_000
    )

    # open a log tab too, then reload: the panel, the detail tab, the log tab and the plot return
    detail = open_detail(page, "detail-dask")  # back to its tab, behind the plot's
    detail.locator('button[aria-label="Open logs detail-dask"]').click()
    expect(page.locator('.jp-WorkbenchLogs[aria-label="Logs of detail-dask"]')).to_be_visible()
    page.wait_for_timeout(1500)  # the workspace saves on a short debounce
    page.reload()
    expect(page.locator("#workbench-panel .jp-WorkbenchPanel-header")).to_be_visible(timeout=60_000)
    expect(page.locator('.jp-SideBar .lm-TabBar-tab[data-id="workbench-panel"]')).to_have_class(
        re.compile("lm-mod-current")
    )
    tabs = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab")
    expect(tabs.filter(has_text="Logs: detail-dask")).to_have_count(1, timeout=30_000)
    expect(tabs.filter(has_text=re.compile(r"^detail-dask$"))).to_have_count(1)
    expect(tabs.filter(has_text="Task stream: detail-dask")).to_have_count(1)
    tabs.filter(has_text="Logs: detail-dask").click()
    expect(page.locator(".jp-WorkbenchLogs-text:visible")).to_contain_text("distributed", timeout=30_000)
