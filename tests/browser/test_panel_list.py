"""The Workbench panel's list in a real JupyterLab and Chromium: one line per row, search, status
and kind filters, sort, multi-select with bulk cancel and delete, "Clear finished", 1,000
workloads in a windowed list, and a keyboard-only launch of every kind from the menu button.

One Lab serves the whole module; the records the list shows are written straight into the
Lab's store (no process runs for them), except the few launched for real.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright import sync_api

from .lab import Lab, chromium_page, insert_workloads, module_lab, open_panel

pytestmark = pytest.mark.timeout(300)
expect = sync_api.expect


@pytest.fixture(scope="module")
def lab_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Path]]:
    with module_lab(tmp_path_factory.mktemp("panel-list")) as (lab, home):
        print(f"\njupyter lab log: {lab.log}")
        yield lab, home


@pytest.fixture(scope="module")
def page(lab_home: tuple[Lab, Path]) -> Iterator[sync_api.Page]:
    with chromium_page() as page:
        yield page


def api(lab: Lab, method: str, path: str, body: object | None = None) -> tuple[int, dict[str, object]]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{lab.url}/workbench/api/{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"token {lab.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            text = reply.read().decode()
            return reply.status, json.loads(text) if text else {}
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read().decode() or "{}")


def names(lab: Lab) -> set[str]:
    status, body = api(lab, "GET", "workloads")
    assert status == 200, body
    return {str(w["name"]) for w in body["workloads"]}  # type: ignore[union-attr]


def clear_store(lab: Lab) -> None:
    for name in names(lab):
        api(lab, "POST", f"workloads/{name}/cancel")
        status, body = api(lab, "DELETE", f"workloads/{name}?force=true")
        assert status in (200, 204, 404), body


def rows(page: sync_api.Page) -> sync_api.Locator:
    return page.locator("#workbench-panel .jp-WorkbenchPanel-row")


def row(page: sync_api.Page, name: str) -> sync_api.Locator:
    return page.locator(f'#workbench-panel .jp-WorkbenchPanel-row[data-workload="{name}"]')


def test_rows_search_filters_sort_select_and_clear(lab_home: tuple[Lab, Path], page: sync_api.Page) -> None:
    lab, home = lab_home
    now = time.time()
    insert_workloads(
        home,
        [
            {"id": "alpha-train", "kind": "train", "status": "failed", "created": now - 500, "exit_code": 3,
             "spec": {"kind": "train", "resources": {"cpu": "2", "memory": "4Gi"}}},
            {"id": "beta-pod", "kind": "pod", "status": "succeeded", "created": now - 400,
             "started": now - 399, "ended": now - 394},
            {"id": "gamma-nb", "kind": "notebook", "status": "cancelled", "created": now - 300},
            {"id": "delta-pod", "kind": "pod", "status": "succeeded", "created": now - 200},
            {"id": "eps-dask", "kind": "dask", "status": "failed", "created": now - 100,
             "spec": {"kind": "dask", "workers": 3}},
        ],
    )  # fmt: skip
    open_panel(page, lab)
    panel = page.locator("#workbench-panel")

    # one line per row, newest first across kinds; a fixed duration once ended; "—" for no resources
    expect(rows(page)).to_have_count(5, timeout=15_000)
    expect(rows(page).locator(".jp-WorkbenchPanel-name")).to_have_text(
        ["eps-dask", "delta-pod", "gamma-nb", "beta-pod", "alpha-train"]
    )
    beta = row(page, "beta-pod")
    expect(beta.locator(".jp-WorkbenchPanel-duration")).to_have_text("5s")
    expect(beta.locator(".jp-WorkbenchPanel-resources")).to_have_text("—")
    expect(row(page, "alpha-train").locator(".jp-WorkbenchPanel-resources")).to_have_text("2 CPU · 4Gi")
    expect(row(page, "alpha-train").locator(".jp-WorkbenchPanel-status")).to_have_text("failed (3)")
    expect(row(page, "eps-dask").locator(".jp-WorkbenchPanel-resources")).to_have_text("3 workers")
    heights = {round(box["height"]) for box in (r.bounding_box() for r in rows(page).all()) if box}
    assert heights == {30}, heights  # one line each

    # search, status filter, kind filter, sort
    search = panel.get_by_role("searchbox", name="Search workloads")
    search.fill("pod")
    expect(rows(page).locator(".jp-WorkbenchPanel-name")).to_have_text(["delta-pod", "beta-pod"])
    search.fill("")
    panel.get_by_label("Status").select_option("failed")
    expect(rows(page).locator(".jp-WorkbenchPanel-name")).to_have_text(["eps-dask", "alpha-train"])
    panel.get_by_label("Kind").select_option("train")
    expect(rows(page).locator(".jp-WorkbenchPanel-name")).to_have_text(["alpha-train"])
    panel.get_by_label("Kind").select_option("all")
    panel.get_by_label("Status").select_option("all")
    panel.get_by_label("Sort").select_option("name")
    expect(rows(page).locator(".jp-WorkbenchPanel-name")).to_have_text(
        ["alpha-train", "beta-pod", "delta-pod", "eps-dask", "gamma-nb"]
    )
    panel.get_by_label("Sort").select_option("newest")

    # the row's context menu clones it into the launch form, prefilled from its spec
    row(page, "alpha-train").click(button="right")
    page.locator(".jp-WorkbenchPanel-menu .lm-Menu-item", has_text="Clone").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog.locator(".jp-Dialog-header")).to_contain_text("Clone alpha-train", timeout=15_000)
    expect(dialog.locator("#root_resources_cpu")).to_have_value("2")
    expect(dialog.locator("#root_resources_memory")).to_have_value("4Gi")
    expect(dialog.locator("#root_name")).to_have_value("")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)

    # multi-select: a click, then shift-click selects the range; delete them (confirming)
    row(page, "delta-pod").get_by_label("Select delta-pod").click()
    row(page, "beta-pod").get_by_label("Select beta-pod").click(modifiers=["Shift"])
    expect(panel.locator(".jp-WorkbenchPanel-selection")).to_contain_text("3 selected")
    panel.get_by_role("button", name="Delete selected").click()
    expect(dialog.locator(".jp-Dialog-header")).to_contain_text("Delete 3 workloads?")
    dialog.get_by_role("button", name="Delete 3").click()
    expect(rows(page).locator(".jp-WorkbenchPanel-name")).to_have_text(
        ["eps-dask", "alpha-train"], timeout=15_000
    )
    assert names(lab) == {"eps-dask", "alpha-train"}

    # two running pods: select both, cancel them together (confirming)
    for name in ("live-a", "live-b"):
        status, body = api(
            lab, "POST", "workloads", {"kind": "pod", "name": name, "code": "import time; time.sleep(60)"}
        )
        assert status == 201, body
    expect(row(page, "live-b")).to_be_visible(timeout=30_000)
    expect(row(page, "live-a")).to_be_visible(timeout=30_000)
    row(page, "live-a").get_by_label("Select live-a").click()
    row(page, "live-b").get_by_label("Select live-b").click()
    panel.get_by_role("button", name="Cancel selected").click()
    expect(dialog.locator(".jp-Dialog-header")).to_contain_text("Cancel 2 workloads?")
    dialog.get_by_role("button", name="Cancel 2").click()
    expect(row(page, "live-a")).to_have_attribute("data-status", "cancelled", timeout=30_000)
    expect(row(page, "live-b")).to_have_attribute("data-status", "cancelled", timeout=30_000)
    # an ended row keeps a fixed duration: it does not grow
    first = row(page, "live-a").locator(".jp-WorkbenchPanel-duration").inner_text()
    page.wait_for_timeout(2100)
    assert row(page, "live-a").locator(".jp-WorkbenchPanel-duration").inner_text() == first

    # "Clear finished" asks, then deletes every finished workload shown
    panel.get_by_label("Select all shown").click()  # selection does not matter to it
    panel.get_by_label("Select all shown").click()
    panel.get_by_role("button", name="Clear finished").click()
    expect(dialog.locator(".jp-Dialog-header")).to_contain_text("Clear 4 finished workloads?")
    dialog.get_by_role("button", name="Delete 4").click()
    expect(rows(page)).to_have_count(0, timeout=30_000)
    expect(panel.locator(".jp-WorkbenchPanel-empty")).to_be_visible()
    assert names(lab) == set()


def test_thousand_workloads_windowed_and_filtered_by_status(
    lab_home: tuple[Lab, Path], page: sync_api.Page
) -> None:
    lab, home = lab_home
    clear_store(lab)
    now = time.time()
    statuses = ["succeeded", "failed", "cancelled", "succeeded"]
    kinds = ["pod", "train", "notebook", "dask", "serve"]
    insert_workloads(
        home,
        [
            {
                "id": f"bulk-{i:04d}",
                "kind": kinds[i % 5],
                "status": statuses[i % 4],
                "created": now - 5000 + i,
            }
            for i in range(1000)
        ],
    )
    open_panel(page, lab)
    panel = page.locator("#workbench-panel")
    count = panel.locator(".jp-WorkbenchPanel-selection .jp-WorkbenchPanel-count")
    expect(count).to_have_text("1000 workloads", timeout=30_000)
    expect(rows(page).first).to_have_attribute("data-workload", "bulk-0999")
    drawn = rows(page).count()
    assert 10 <= drawn <= 80, drawn  # windowed: only the rows in view (and a few around)

    started = time.monotonic()
    panel.get_by_label("Status").select_option("failed")
    expect(count).to_have_text("250 workloads")
    expect(rows(page).first).to_have_attribute("data-workload", "bulk-0997")
    took = time.monotonic() - started
    assert took < 2.0, f"filtering 1,000 workloads took {took:.2f} s"
    statuses_drawn = set(rows(page).evaluate_all("rs => rs.map(r => r.dataset.status)"))
    assert statuses_drawn == {"failed"}, statuses_drawn

    # scroll to the end: the oldest failed one is drawn, and still only a window of rows
    page.locator("#workbench-panel .jp-WorkbenchPanel-scroller").evaluate(
        "s => { s.scrollTop = s.scrollHeight; }"
    )
    expect(row(page, "bulk-0001")).to_be_visible(timeout=10_000)
    assert rows(page).count() <= 80
    # the keyboard walks the rows: End, then Home
    row(page, "bulk-0001").focus()
    expect(row(page, "bulk-0001")).to_be_focused()
    page.keyboard.press("ArrowUp")
    expect(row(page, "bulk-0005")).to_be_focused()
    page.keyboard.press("Home")
    expect(row(page, "bulk-0997")).to_be_focused()
    # Enter on a row opens its detail view (workbench:open-detail) in the main area
    page.keyboard.press("Enter")
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="bulk-0997")).to_be_visible(
        timeout=15_000
    )
    panel.get_by_label("Status").select_option("all")


KEYBOARD_LAUNCHES = [
    # kind, menu position, fields to fill: (input id, text), the accept button's label
    ("pod", 0, [("root_code", "print('keyboard pod')")], "Launch"),
    ("dask", 1, [("root_workers", "1")], "Launch"),
    ("train", 2, [("root_code", "print('keyboard train')")], "Launch"),
    ("notebook", 3, [], "Launch"),
    ("serve", 4, [("root_code", "def predict(inputs):\n    return inputs\n")], "Serve"),
]


def focused_id(page: sync_api.Page) -> str:
    return str(page.evaluate("() => document.activeElement && document.activeElement.id"))


def tab_to(page: sync_api.Page, element_id: str) -> None:
    for _ in range(40):
        if focused_id(page) == element_id:
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached #{element_id} (at #{focused_id(page)})")


def test_keyboard_only_launch_of_every_kind(lab_home: tuple[Lab, Path], page: sync_api.Page) -> None:
    lab, _ = lab_home
    notebook = {
        "cells": [{"cell_type": "code", "execution_count": None, "id": "c1", "metadata": {}, "outputs": [],
                   "source": "print('kb')"}],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }  # fmt: skip
    (lab.root / "kb.ipynb").write_text(json.dumps(notebook))
    open_panel(page, lab)
    launch = page.get_by_role("button", name="Launch…")
    dialog = page.locator(".jp-Dialog")
    posted: list[dict[str, object]] = []
    page.on(
        "request",
        lambda r: (
            posted.append(json.loads(r.post_data or "{}"))
            if r.method == "POST" and r.url.split("?")[0].endswith("/workbench/api/workloads")
            else None
        ),
    )
    for kind, position, fields, accept in KEYBOARD_LAUNCHES:
        name = f"kb-{kind}"
        launch.focus()
        page.keyboard.press("Enter")
        menu = page.locator(".jp-WorkbenchPanel-launchMenu")
        expect(menu).to_be_visible()
        expect(menu.locator(".lm-Menu-item")).to_have_count(5)
        for _ in range(position):
            page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
        expect(dialog).to_be_visible()
        first = "root_notebook" if kind == "notebook" else "root_name"
        expect(dialog.locator(f"#{first}")).to_be_focused(timeout=10_000)
        if kind == "notebook":
            page.keyboard.type("kb.ipynb")
            tab_to(page, "root_name")
        page.keyboard.type(name)
        for element_id, text in fields:
            tab_to(page, element_id)
            page.keyboard.press("Control+A")
            page.keyboard.type(text)
        # to the accept button by Tab, and Enter
        for _ in range(60):
            active = page.evaluate("() => document.activeElement && document.activeElement.textContent")
            if active == accept and page.evaluate("() => document.activeElement.tagName") == "BUTTON":
                break
            page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        expect(dialog.locator(".jp-WorkbenchLaunch-error")).to_have_count(0)
        expect(dialog).to_have_count(0, timeout=15_000)
        expect(row(page, name)).to_be_visible(timeout=15_000)
        assert posted[-1]["kind"] == kind and posted[-1]["name"] == name, posted[-1]
        api(lab, "POST", f"workloads/{name}/cancel")  # accepted: that is all this test needs
    assert [p["kind"] for p in posted] == ["pod", "dask", "train", "notebook", "serve"]
    for kind, *_ in KEYBOARD_LAUNCHES:
        expect(row(page, f"kb-{kind}")).to_have_attribute(
            "data-status", re.compile("cancelled|succeeded|failed"), timeout=60_000
        )
        status, body = api(lab, "DELETE", f"workloads/kb-{kind}")
        assert status in (200, 204), body
