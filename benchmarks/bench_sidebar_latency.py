"""B8: time from a workload's state change in the store to the sidebar showing it.

A real `jupyter lab` with the extension, Debian's Chromium driven by Playwright, the Workbench
panel open. Five times: a record is written to the shared store by another process's API (as
the CLI or a kernel would), and the clock runs until its row is visible; then its status is
changed and the clock runs until the row shows the new status. No polling by the page: the
server notices the store's change and pushes an event.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import _common

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RUNS = 5


def main() -> None:
    from playwright import sync_api

    from tests.browser.lab import CHROMIUM, CHROMIUM_ARGS, start_lab
    from workbench.config import load_settings
    from workbench.store import Store, Workload

    appear, change = [], []
    with _common.isolated_home("b8") as tmp, start_lab(tmp) as lab, sync_api.sync_playwright() as pw:
        store = Store(load_settings().db_path)
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(f"{lab.url}/lab?token={lab.token}")
            page.locator('.jp-SideBar .lm-TabBar-tab[data-id="workbench-panel"]').click(timeout=60_000)
            page.locator(".jp-WorkbenchPanel").wait_for(timeout=30_000)
            for i in range(RUNS):
                name = f"b8-{i}"
                row = page.locator(f'.jp-WorkbenchPanel-row[data-workload="{name}"]')
                record = Workload(
                    id=name, kind="pod", backend="local", status="running", spec={"kind": "pod"},
                    run_dir=str(tmp / name), created=time.time(), started=time.time(),
                )  # fmt: skip
                started = time.monotonic()
                store.insert(record)
                row.wait_for(state="visible", timeout=10_000)
                appear.append(time.monotonic() - started)
                started = time.monotonic()
                store.finish(name, "succeeded", exit_code=0, message="")
                sync_api.expect(row).to_have_attribute("data-status", "succeeded", timeout=10_000)
                change.append(time.monotonic() - started)
        finally:
            browser.close()
            store.close()
    for label, values in (("new workload appears", appear), ("status change shown", change)):
        median = _common.median(values)
        print(
            f"B8 {label}: median {_common.ms(median)} over {RUNS} (spread {_common.ms(min(values))}.."
            f"{_common.ms(max(values))}) target <= 500 ms: {_common.verdict(median, 0.5)}"
        )


if __name__ == "__main__":
    _common.main_guard(main)
