"""Ended workloads raise a notification in a real JupyterLab; running rows show their usage.

The workloads are launched from outside the page (the service, as a kernel's ``%%pod`` or the
CLI does), so the page learns of them from server events only. The notification threshold is
set low (an admin override of the extension's ``notifyAfter`` setting): a run lasting longer
is notified with its outcome and duration, a shorter one is not.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright import sync_api

from workbench.service import Service

from .lab import Lab, chromium_page, start_lab
from .test_sidebar import Shots, row

pytestmark = pytest.mark.timeout(300)

THRESHOLD = 3  # seconds
# ~64 MiB held and some CPU burnt for about 8 s, in steps the supervisor samples
LONG = """
import time
block = bytearray(64 * 2**20)
end = time.time() + 8
while time.time() < end:
    sum(range(200_000))
    time.sleep(0.05)
print('long run done')
"""


@pytest.fixture
def lab(tmp_path: Path, service: Service) -> Iterator[Lab]:
    settings: dict[str, dict[str, object]] = {"jupyter-ml-workbench:plugin": {"notifyAfter": THRESHOLD}}
    with start_lab(tmp_path, settings) as server:
        print(f"\njupyter lab log: {server.log}")
        yield server


@pytest.fixture
def page(lab: Lab) -> Iterator[sync_api.Page]:
    with chromium_page() as page:
        yield page


def test_notification_for_a_long_run_and_usage_in_its_row(
    lab: Lab, page: sync_api.Page, tmp_path: Path, service: Service
) -> None:
    expect = sync_api.expect
    shot = Shots(page, tmp_path / "screenshots")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    usage_requests: list[str] = []
    page.on("request", lambda r: usage_requests.append(r.url) if "/usage" in r.url else None)
    page.goto(f"{lab.url}/lab?token={lab.token}")
    tab = page.locator('.jp-SideBar .lm-TabBar-tab[data-id="workbench-panel"]')
    expect(tab).to_be_visible(timeout=60_000)
    tab.click()
    expect(page.locator("#workbench-panel .jp-WorkbenchPanel-header")).to_have_text("Workbench")

    # a run shorter than the threshold ends without a notification
    service.launch({"kind": "pod", "name": "short-pod", "code": "print(1)"})
    short = row(page, "short-pod")
    expect(short).to_have_attribute("data-status", "succeeded", timeout=60_000)

    # a longer one, launched from outside the page: its row shows CPU and memory as it runs
    service.launch({"kind": "pod", "name": "long-pod", "code": LONG})
    pod = row(page, "long-pod")
    expect(pod).to_have_attribute("data-status", "running", timeout=60_000)
    usage = pod.locator(".jp-WorkbenchPanel-usage")
    expect(usage.locator(".jp-WorkbenchPanel-memory")).to_contain_text(re.compile(r"Mem \d"), timeout=15_000)
    expect(usage.locator(".jp-WorkbenchPanel-cpu")).to_contain_text(re.compile(r"CPU \d"))
    expect(usage.locator("svg.jp-WorkbenchSparkline path").first).to_be_attached(timeout=15_000)
    shot("usage-in-row")

    # its usage tab: peaks and averages, CPU and memory plotted over time
    usage.click()
    view = page.locator('.jp-WorkbenchUsage-body[data-workload="long-pod"]')
    expect(view.locator(".jp-WorkbenchUsage-summary")).to_contain_text("Memory", timeout=15_000)
    for series in ("CPU (cores)", "Memory"):
        plot = view.locator(f'figure[data-series="{series}"]')
        expect(plot.locator("path.jp-WorkbenchUsage-line")).to_be_attached(timeout=15_000)
    shot("usage-tab")

    # it ends: a notification names it, its outcome and duration, and opens its logs
    expect(pod).to_have_attribute("data-status", "succeeded", timeout=60_000)
    toast = page.locator(".jp-Notification-Toast-success", has_text="long-pod")
    expect(toast.locator(".jp-toast-message")).to_have_text(
        re.compile(r"^Pod long-pod succeeded after \d+s$"), timeout=15_000
    )
    shot("notification")
    toast.locator(".jp-toast-button", has_text="Open logs").click()
    expect(page.locator(".jp-WorkbenchLogs-text").last).to_contain_text("long run done", timeout=30_000)
    shot("logs-from-notification")

    assert page.locator(".jp-Notification-Toast-success", has_text="short-pod").count() == 0
    # the usage of a row that ended is no longer asked for; nothing else polled the listing
    assert usage_requests, "the page never asked for usage"
    assert errors == []
