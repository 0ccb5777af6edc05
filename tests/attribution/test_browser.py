"""The attribution page in Chromium: the chart draws six models, the controls work from the keyboard
alone, and the CSV link carries the chosen settings. Screenshots in var/screenshots/."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.attribution.helpers import DAY, clk, conv, imp, insert_events
from tests.uploads.test_browser_upload import _shoot, _sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db]


def test_compare_models_with_the_keyboard(
    browser_page: Any, live_url: str, acme: Any, acme_marketer: Any, screenshot_dir: Any
) -> None:
    events = []
    for n in range(12):
        user = f"u{n}"
        events += [imp(-70 - n, "ttd-prospecting", user, cost=0.8), clk(-30, "ttd-retargeting", user, cost=0.5)]
        if n % 3:
            events += [imp(-5, "ttd-social", user, cost=0.2, line_item="li-9"), conv(0, user, value=40.0 + n)]
    insert_events(acme, events)
    page = browser_page
    _sign_in(page, live_url, acme_marketer)
    page.goto(f"/o/acme/reports/attribution/?start={DAY.isoformat()}&end={DAY.isoformat()}")
    expect(page.locator("h1")).to_have_text("Attribution")
    page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('attr-chart'))")
    datasets = page.evaluate("() => Chart.getChart(document.getElementById('attr-chart')).data.datasets.length")
    assert datasets == 6
    expect(page.locator(".attr-table tbody tr")).to_have_count(3)
    _shoot(page, screenshot_dir, "attribution-compare.png")

    # Keyboard: choose "line item" with the arrow key, Tab to the half-life, type, submit with Enter.
    page.focus("#attr-group")
    page.keyboard.press("ArrowDown")
    expect(page.locator("#attr-group")).to_have_value("line_item")
    page.keyboard.press("Tab")
    expect(page.locator("#attr-lookback")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#attr-half-life")).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type("3")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "group_by=line_item" in page.url and "half_life_days=3" in page.url
    expect(page.locator(".attr-table tbody")).to_contain_text("li-9")
    href = page.locator("a[download]").get_attribute("href") or ""
    assert "group_by=line_item" in href and "half_life_days=3.0" in href
    _shoot(page, screenshot_dir, "attribution-line-items.png")

    # A reversed range: the reason is announced next to the controls.
    page.goto("/o/acme/reports/attribution/?start=2026-11-10&end=2026-11-01")
    expect(page.locator("[role=alert]")).to_contain_text("end is before start")
