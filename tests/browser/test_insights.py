"""Audience insights in Chromium: the builder's "Who is in it" panel draws the current tree's charts from the API
(counts equal the tree-insights API for the same tree), and the audience page renders its charts without errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.test_builder import _shoot, acme_records  # noqa: F401
from tests.uploads.test_browser_upload import _sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db]


def test_builder_panel_and_audience_page_show_insights(
    browser_page: Any,
    live_url: str,
    acme_marketer: Any,
    acme_records: Any,  # noqa: F811  (the fixture imported from the builder's browser tests)
    screenshot_dir: Path,
) -> None:
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _sign_in(page, live_url, acme_marketer)
    page.goto("/o/acme/audiences/build/templates/")
    page.get_by_role("link", name=re.compile(r"Use template UID2-ready contacts in the US")).click()
    panel = page.get_by_test_id("builder-insights")
    country = panel.locator("[data-chart=country]")
    expect(country).to_be_visible(timeout=15_000)
    tree = {"op": "and", "children": [{"field": "email_sha256", "operator": "is_not_null"},
                                      {"field": "country", "operator": "eq", "value": "US"}]}  # fmt: skip
    api = page.evaluate(
        """async (tree) => {
            const token = document.querySelector('meta[name=csrf-token]').content;
            const r = await fetch('/o/acme/api/v1/audiences/insights', {method: 'POST', credentials: 'same-origin',
              headers: {'Content-Type': 'application/json', 'X-CSRFToken': token}, body: JSON.stringify({tree})});
            return r.json();
        }""",
        tree,
    )
    us = api["composition"]["country"][0]
    assert us["value"] == "US"
    expect(country.locator("tr").first).to_contain_text(f"{us['count']}")
    expect(panel.locator("[data-role=score]")).to_have_text(str(api["quality"]["score"]))
    _shoot(page, screenshot_dir, "insights-builder-panel.png")

    from django_tenants.utils import schema_context

    from audiences.models import Audience

    with schema_context("org_acme"):
        pk = Audience.objects.get(name="Browser CRM").pk
    page.goto(f"/o/acme/audiences/{pk}/")
    expect(page.get_by_test_id("quality-score")).to_be_visible()
    expect(page.locator("[data-chart=industry] .bar").first).to_be_visible()
    _shoot(page, screenshot_dir, "insights-audience-page.png")
    assert errors == []
