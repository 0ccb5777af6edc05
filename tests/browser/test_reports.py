"""The reports dashboard in Chromium: default range, a preset, a custom range, drill-down to a
campaign, the summaries page. Screenshots var/screenshots/reports-*.png."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from p360.core import formatting
from tests.reporting.helpers import aggregate, expected, generate_rows, load
from tests.uploads.test_browser_upload import _shoot, _sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db]


def test_dashboard_range_presets_custom_and_drill_down(
    browser_page: Any, live_url: str, acme: Any, acme_marketer: Any, screenshot_dir: Any, tmp_path: Any
) -> None:
    yesterday = timezone.now().date() - dt.timedelta(days=1)
    days = [yesterday - dt.timedelta(days=n) for n in range(45)]
    rows = generate_rows(days, campaigns=3, creatives=6)
    load(acme, tmp_path, rows)
    monday = yesterday - dt.timedelta(days=yesterday.weekday() + 7)
    aggregate("--org", "acme", "--period", "week", "--start", monday.isoformat())
    page = browser_page
    _sign_in(page, live_url, acme_marketer)

    page.goto("/o/acme/reports/")
    expect(page.locator("h1")).to_have_text("Reports")
    last30 = expected(rows, yesterday - dt.timedelta(days=29), yesterday)
    expect(page.locator('[data-kpi="spend"] .kpi-value')).to_have_text(formatting.money(last30["spend"]))
    page.wait_for_function("() => window.Chart && Chart.getChart('chart-money')")
    expect(page.locator("#freshness")).to_contain_text(f"Surfside {yesterday.day} {yesterday:%b %Y}")
    _shoot(page, screenshot_dir, "reports-dashboard.png")

    # a preset, chosen with the keyboard
    page.focus("#range-preset")
    page.select_option("#range-preset", "last7")
    page.get_by_role("button", name="Apply").click()
    last7 = expected(rows, yesterday - dt.timedelta(days=6), yesterday)
    expect(page.locator('[data-kpi="spend"] .kpi-value')).to_have_text(formatting.money(last7["spend"]))
    expect(page.locator(".range-note")).to_contain_text("compared with")

    # a custom range: editing a date switches the picker to "Custom"
    start, end = yesterday - dt.timedelta(days=20), yesterday - dt.timedelta(days=10)
    page.fill("#range-start", start.isoformat())
    page.fill("#range-end", end.isoformat())
    page.dispatch_event("#range-end", "change")
    expect(page.locator("#range-preset")).to_have_value("custom")
    page.get_by_role("button", name="Apply").click()
    custom = expected(rows, start, end)
    expect(page.locator('[data-kpi="spend"] .kpi-value')).to_have_text(formatting.money(custom["spend"]))
    expect(page.locator('[data-kpi="roas"] .kpi-value')).to_have_text(formatting.metric("roas", custom["roas"]))

    # sort the creatives table by CTR, then drill down into a campaign
    page.get_by_role("navigation", name="Table level").get_by_role("link", name="Creatives").click()
    expect(page.locator("#tables-title")).to_have_text("Performance by creative")
    page.locator("th a", has_text="CTR %").click()
    expect(page.locator('th[aria-sort="descending"]')).to_contain_text("CTR %")
    _shoot(page, screenshot_dir, "reports-creatives-table.png")
    page.get_by_role("navigation", name="Table level").get_by_role("link", name="Campaigns").click()
    page.get_by_role("link", name="Campaign 1", exact=True).click()
    expect(page.locator("h1")).to_have_text("Campaign 1")
    in_campaign = expected(rows, start, end, campaign="Campaign 1")
    expect(page.locator('[data-kpi="spend"] .kpi-value')).to_have_text(formatting.money(in_campaign["spend"]))
    expect(page.locator("#tables-title")).to_have_text("Performance by strategy")
    page.wait_for_function("() => window.Chart && Chart.getChart('chart-sources')")
    _shoot(page, screenshot_dir, "reports-campaign.png")

    page.goto("/o/acme/reports/summaries/")
    expect(page.locator("h1")).to_have_text("Weekly summaries")
    expect(page.locator(".summary-body")).to_contain_text("Top campaigns by conversions")
    _shoot(page, screenshot_dir, "reports-summaries.png")
