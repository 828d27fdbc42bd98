"""Accessibility of the Workbench panel and its launch forms, checked in Chromium with axe-core
(from labextension/node_modules) and by what assistive technology reads: named buttons, named
inputs, an aria-live announcement of a status change, and every bad field of a launch marked
next to itself.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright import sync_api

from .lab import Lab, axe_violations, chromium_page, fill_form, insert_workloads, module_lab, open_panel

pytestmark = pytest.mark.timeout(300)
expect = sync_api.expect

MENU = [("pod", "Pod"), ("dask", "Dask cluster"), ("train", "Training job"), ("notebook", "Notebook run"),
        ("serve", "Serve a model…")]  # fmt: skip


@pytest.fixture(scope="module")
def lab_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Path]]:
    with module_lab(tmp_path_factory.mktemp("a11y")) as (lab, home):
        print(f"\njupyter lab log: {lab.log}")
        yield lab, home


@pytest.fixture(scope="module")
def page(lab_home: tuple[Lab, Path]) -> Iterator[sync_api.Page]:
    lab, home = lab_home
    now = time.time()
    insert_workloads(
        home,
        [
            {"id": "a11y-failed", "kind": "train", "status": "failed", "created": now - 90,
             "exit_code": 1, "message": "exit code 1"},
            {"id": "a11y-done", "kind": "notebook", "status": "succeeded", "created": now - 60},
            {"id": "a11y-dask", "kind": "dask", "status": "cancelled", "created": now - 30,
             "spec": {"kind": "dask", "workers": 2}},
            {"id": "a11y-scale", "kind": "dask", "status": "running", "created": now - 20,
             "ended": None, "spec": {"kind": "dask", "workers": 2}},
        ],
    )  # fmt: skip
    with chromium_page() as page:
        open_panel(page, lab)
        yield page


def launch_form(page: sync_api.Page, label: str) -> sync_api.Locator:
    page.locator("#workbench-panel").get_by_role("button", name="Launch…").click()
    page.locator(".jp-WorkbenchPanel-launchMenu .lm-Menu-item", has_text=label).click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog.locator("form")).to_be_visible(timeout=15_000)
    # the dialog focuses its first field once its form has rendered: a fill before that can
    # lose its text to that field (under load, a code fill once ended in the name field)
    return dialog


def test_panel_has_no_serious_violations_and_named_controls(page: sync_api.Page) -> None:
    panel = page.locator("#workbench-panel")
    expect(panel.locator('.jp-WorkbenchPanel-row[data-workload="a11y-dask"]')).to_be_visible(timeout=15_000)
    page.locator('.jp-WorkbenchPanel-row[data-workload="a11y-dask"]').hover()  # its actions shown
    violations = axe_violations(page, "#workbench-panel")
    assert violations == [], violations

    # every button and input has a name; row buttons say which workload they act on
    unnamed = panel.evaluate(
        """p => Array.from(p.querySelectorAll('button, input, select')).filter(e => {
            const name = e.getAttribute('aria-label') || e.getAttribute('title') ||
              e.textContent.trim() || (e.labels && e.labels.length && e.labels[0].textContent.trim());
            return !name;
        }).map(e => e.outerHTML.slice(0, 120))"""
    )
    assert unnamed == [], unnamed
    for name in ("a11y-failed", "a11y-done", "a11y-dask"):
        row = panel.locator(f'.jp-WorkbenchPanel-row[data-workload="{name}"]')
        expect(row.get_by_role("button", name=f"Logs of {name}")).to_have_count(1)
        expect(row.get_by_role("button", name=f"Delete {name}")).to_have_count(1)
        expect(row.get_by_role("checkbox", name=f"Select {name}")).to_have_count(1)
    labels = panel.locator(".jp-WorkbenchPanel-row button").evaluate_all(
        "bs => bs.map(b => b.getAttribute('aria-label'))"
    )
    assert len(labels) == len(set(labels)), labels  # no two buttons read the same

    # "Launch…" is a menu button, not a select acting on change
    launch = panel.get_by_role("button", name="Launch…")
    expect(launch).to_have_attribute("aria-haspopup", "menu")
    expect(panel.locator("select[aria-label='Launch']")).to_have_count(0)


def test_each_launch_form_has_no_serious_violations(page: sync_api.Page) -> None:
    for kind, label in MENU:
        dialog = launch_form(page, label)
        first = "#root_notebook" if kind == "notebook" else "#root_name"
        expect(dialog.locator(first)).to_be_focused(timeout=10_000)  # not "Show all fields"
        violations = axe_violations(page, ".jp-Dialog-content")
        assert violations == [], (kind, violations)
        unnamed = dialog.evaluate(
            """d => Array.from(d.querySelectorAll('form input, form select, form textarea'))
                .filter(e => !(e.getAttribute('aria-label') || (e.labels && e.labels.length)))
                .map(e => e.id)"""
        )
        assert unnamed == [], (kind, unnamed)
        dialog.get_by_role("button", name="Cancel").click()
        expect(dialog).to_have_count(0)


def test_status_change_is_announced(page: sync_api.Page) -> None:
    live = page.locator('#workbench-panel [aria-live="polite"][role="status"]')
    expect(live).to_have_count(1)
    dialog = launch_form(page, "Pod")
    expect(dialog.locator("#root_name")).to_be_focused(timeout=10_000)  # see launch_form
    fill_form(dialog, {"#root_name": "a11y-live", "#root_code": "print('announced')\n"})
    dialog.get_by_role("button", name="Launch").click()
    expect(dialog).to_have_count(0, timeout=15_000)
    expect(live).to_have_text("a11y-live is now succeeded", timeout=60_000)


def test_two_bad_fields_are_marked_next_to_themselves(page: sync_api.Page) -> None:
    dialog = launch_form(page, "Pod")
    expect(dialog.locator("#root_name")).to_be_focused(timeout=10_000)  # see launch_form
    fill_form(
        dialog,
        {
            "#root_name": "a11y-bad",
            "#root_code": "print('never')\n",
            "#root_resources_cpu": "two cores",
            "#root_resources_memory": "lots",
        },
    )
    dialog.get_by_role("button", name="Launch").click()

    cpu, memory = dialog.locator("#root_resources_cpu"), dialog.locator("#root_resources_memory")
    expect(cpu).to_have_attribute("aria-invalid", "true", timeout=15_000)
    expect(memory).to_have_attribute("aria-invalid", "true")
    expect(dialog.locator("#root_name")).not_to_have_attribute("aria-invalid", "true")
    expect(cpu).to_be_focused()  # the first bad field
    # each message sits under its own field, in the form's words
    expect(dialog.locator("#root_resources_cpu__error")).to_contain_text("two cores")
    expect(dialog.locator("#root_resources_memory__error")).to_contain_text("lots")
    summary = dialog.locator(".jp-WorkbenchLaunch-error")
    expect(summary).to_contain_text("2 fields need a change")
    expect(summary).to_contain_text("Memory")
    expect(summary).to_contain_text("CPU")
    assert "--" not in summary.inner_text()
    assert "workbench schema" not in summary.inner_text()
    # the form keeps what was typed
    expect(dialog.locator("#root_name")).to_have_value("a11y-bad")
    violations = axe_violations(page, ".jp-Dialog-content")
    assert violations == [], violations
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)


def test_scale_refuses_bad_counts_next_to_the_field_and_cancel_asks(page: sync_api.Page) -> None:
    row = page.locator('#workbench-panel .jp-WorkbenchPanel-row[data-workload="a11y-scale"]')
    expect(row).to_have_attribute("data-status", "running", timeout=15_000)
    scale = row.get_by_role("button", name="Scale a11y-scale")
    expect(scale.locator("svg")).to_have_attribute("data-icon", "workbench:scale")  # not "+"
    dialog = page.locator(".jp-Dialog")
    for typed, reason in (("-3", "-3 workers is out of range"), ("", "enter the number of workers")):
        scale.click()
        field = dialog.get_by_label("Workers")
        expect(field).to_be_focused()
        field.fill(typed)
        dialog.get_by_role("button", name="Scale").click()
        # refused: the dialog stays, the field is marked and the reason is next to it
        expect(field).to_have_attribute("aria-invalid", "true")
        expect(dialog.locator(".jp-WorkbenchScale-error")).to_have_text(re.compile(reason))
        expect(field).to_have_value(typed)
        dialog.get_by_role("button", name="Cancel").click()
        expect(dialog).to_have_count(0)

    # Cancel asks first; "Keep" leaves it running
    row.get_by_role("button", name="Cancel a11y-scale").click()
    expect(dialog.locator(".jp-Dialog-header")).to_have_text("Cancel a11y-scale?")
    violations = axe_violations(page, ".jp-Dialog-content")
    assert violations == [], violations
    dialog.get_by_role("button", name="Keep").click()
    expect(dialog).to_have_count(0)
    expect(row).to_have_attribute("data-status", "running")
