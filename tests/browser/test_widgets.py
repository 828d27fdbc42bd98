"""The cell widget in a real JupyterLab, driven through Debian's Chromium by Playwright.

A new notebook (Python 3, from the launcher) loads the extension and runs a detached ``%%pod``:
its widget renders in the cell's output, turns running by itself (the kernel's store watcher,
not a re-run), and its Cancel button cancels the workload, in the store too. A short ``%%pod``
that the cell waits on ends with its widget at succeeded, and a ``Workload`` that is a cell's
value shows the same widget. Nothing forces widgets: the kernel that Lab starts for the notebook
finds its session in its connection file. Each step saves a screenshot under the test's tmp dir.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright import sync_api

from workbench.service import Service

from .lab import Lab, chromium_page, start_lab
from .test_sidebar import Shots

pytestmark = pytest.mark.timeout(300)

CELLS = ".jp-NotebookPanel .jp-Notebook .jp-CodeCell"
SLEEPER = """%%pod --detach --name w-sleeper
import time
print('sleeping', flush=True)
time.sleep(30)
print('woke up')
"""
SHORT = """%%pod --name w-short
import time
print('short start', flush=True)
time.sleep(3)
print('short done')
"""
VALUE = """from workbench.service import Service
Service().get('w-short')
"""


@pytest.fixture
def lab(tmp_path: Path, service: Service) -> Iterator[Lab]:
    """`jupyter lab` for one test, on its WORKBENCH_HOME; ``service`` cleans up after it."""
    with start_lab(tmp_path) as server:
        print(f"\njupyter lab log: {server.log}")
        yield server


@pytest.fixture
def page(lab: Lab) -> Iterator[sync_api.Page]:
    with chromium_page() as page:
        yield page


def run_cell(page: sync_api.Page, code: str) -> sync_api.Locator:
    """Type ``code`` into the notebook's last (empty) cell and run it; that cell's locator."""
    cells = page.locator(CELLS)
    sync_api.expect(cells.last.locator(".jp-InputPrompt")).to_have_text("[ ]:")  # not run yet
    cell = cells.nth(cells.count() - 1)
    editor = cell.locator(".cm-content")
    editor.click()
    page.keyboard.insert_text(code.rstrip("\n"))  # as pasted: no auto-indent or closing brackets
    sync_api.expect(editor).to_contain_text(code.splitlines()[0])
    page.keyboard.press("Shift+Enter")  # runs it and adds an empty cell below
    return cell


def widget(cell: sync_api.Locator) -> sync_api.Locator:
    return cell.locator(".jp-OutputArea-output .workbench-widget")


def test_widget_renders_updates_and_cancels(
    lab: Lab, page: sync_api.Page, tmp_path: Path, service: Service
) -> None:
    expect = sync_api.expect
    shot = Shots(page, tmp_path / "screenshots")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    # a new notebook on the Python 3 kernel, from the launcher
    page.goto(f"{lab.url}/lab?token={lab.token}")
    card = page.locator('.jp-LauncherCard[data-category="Notebook"]').first
    expect(card).to_be_visible(timeout=60_000)
    card.click()
    expect(page.locator(CELLS)).to_have_count(1, timeout=30_000)
    kernel = page.locator(".jp-StatusBar-Widget", has_text="Python 3 (ipykernel) | Idle")
    expect(kernel).to_be_visible(timeout=60_000)  # the notebook is open and its kernel ready
    load = run_cell(page, "%load_ext workbench\nprint('loaded')")
    expect(load.locator(".jp-OutputArea-output")).to_have_text("loaded", timeout=60_000)

    # a detached pod: its widget renders in the cell's output with its name, kind and status
    cell = run_cell(page, SLEEPER)
    box = widget(cell)
    expect(box).to_be_visible(timeout=30_000)
    expect(box.locator('.wb-title[data-name="w-sleeper"]')).to_have_text(
        re.compile(r"^\s*w-sleeper\s+pod on local\s*$")
    )
    expect(cell.locator(".jp-OutputArea-output").last).to_contain_text("w-sleeper launched")
    expect(cell.locator(".jp-InputPrompt")).to_have_text("[2]:")
    status = box.locator(".wb-status")
    expect(status).to_have_attribute("data-status", re.compile(r"^(pending|running)$"))
    shot("rendered")

    # it turns running by itself: the cell ran once, the kernel's watcher updated the widget
    expect(status).to_have_attribute("data-status", "running", timeout=30_000)
    expect(box.locator(".wb-clock")).to_have_text(re.compile(r"^for \d+s$"))
    expect(cell.locator(".jp-InputPrompt")).to_have_text("[2]:")
    assert service.get("w-sleeper").status == "running"
    shot("running")

    # Cancel cancels it: the widget says so, and so does the store
    cancel = box.locator("button", has_text="Cancel")
    expect(cancel).to_be_enabled()
    cancel.click()
    expect(status).to_have_attribute("data-status", "cancelled", timeout=30_000)
    expect(status).to_contain_text("cancelled")
    expect(cancel).to_be_disabled()
    assert service.wait("w-sleeper", timeout=30).status == "cancelled"
    shot("cancelled")

    # a pod the cell waits on: its log streams below the widget, which ends at succeeded
    cell = run_cell(page, SHORT)
    box = widget(cell)
    expect(box).to_be_visible(timeout=30_000)
    expect(cell.locator(".jp-InputPrompt")).to_have_text("[3]:", timeout=60_000)  # the cell returned
    expect(cell.locator(".jp-OutputArea-output").last).to_have_text(
        re.compile(r"^short start\s+short done\s*$")
    )
    expect(box.locator(".wb-status")).to_have_attribute("data-status", "succeeded", timeout=30_000)
    expect(box.locator(".wb-clock")).to_have_text(re.compile(r"^in \d+\.\ds$"))
    assert service.get("w-short").status == "succeeded"
    shot("succeeded")

    # a Workload as a cell's value (the Python API) shows the same widget
    cell = run_cell(page, VALUE)
    box = widget(cell)
    expect(box.locator('.wb-title[data-name="w-short"]')).to_be_visible(timeout=30_000)
    expect(box.locator(".wb-status")).to_have_attribute("data-status", "succeeded")
    expect(cell.locator(".jp-OutputPrompt").first).to_have_text("[4]:")
    shot("value")
    assert errors == []
