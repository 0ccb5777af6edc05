"""Portal layout in Chromium at common window widths (session 12 UX review).

* 1366 px (the commonest laptop): the main links sit on one row of their own under the brand; they used
  to wrap beside it and leave "Uploads" alone on a second line.
* 800 px: no page scrolls sideways (a ten-column imports table used to widen the whole page) and the
  header stays compact.
* The segment editor's rule reads as one sentence; "of property" shows only for measures that read one.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from tenants.models import Organization
from tests.orchestration.helpers import tree
from tests.uploads.test_browser_upload import _sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

NARROW_PAGES = [
    "/o/acme/",
    "/o/acme/audiences/",
    "/o/acme/audiences/import/",
    "/o/acme/audiences/imports/",
    "/o/acme/audiences/build/",
    "/o/acme/segments/new/",  # (not the list: its live counts stream for 30 s and this test server is serial)
    "/o/acme/programs/",
    "/o/acme/reports/",
    "/o/acme/ingestion/facebook/",
    "/o/acme/uploads/",
]


@pytest.fixture
def one_import(tmp_path: Path, settings: Any) -> None:
    """One finished import, so the imports tables have a row (their width is what overflowed)."""
    settings.DATA_DIR = tmp_path
    path = tmp_path / "a-rather-long-customer-export-file-name-2026-12.csv"
    rows = ["Email,Company,Industry,Country"] + [f"p{i}@c{i}.com,Company {i},Software,US" for i in range(30)]
    path.write_text("\n".join(rows) + "\n")
    out = io.StringIO()
    call_command("import_audience", "--org", "acme", str(path), "--name", "Layout check audience", "--json", stdout=out)
    assert json.loads(out.getvalue())["rows_loaded"] == 30


def _nav_rows(page: Any) -> dict[str, Any]:
    return page.evaluate(
        """() => {
          const links = [...document.querySelectorAll('.mainnav a')];
          const brand = document.querySelector('.brand').getBoundingClientRect();
          return {tops: [...new Set(links.map(a => Math.round(a.getBoundingClientRect().top)))],
                  count: links.length, brandBottom: brand.bottom,
                  header: document.querySelector('.topbar').getBoundingClientRect().height};
        }"""
    )


@pytest.mark.parametrize("who", ["acme_marketer", "manager"])
def test_main_links_sit_on_one_row_at_1366(browser_page: Any, live_url: str, request: Any, who: str) -> None:
    page = browser_page
    page.set_viewport_size({"width": 1366, "height": 900})
    _sign_in(page, live_url, request.getfixturevalue(who))
    page.goto("/o/acme/")
    expect(page.locator("h1")).to_be_visible()
    rows = _nav_rows(page)
    assert rows["count"] >= 10
    assert len(rows["tops"]) == 1, rows  # one row: no link wrapped onto a line of its own
    assert rows["tops"][0] >= rows["brandBottom"] - 1, rows  # the row of links is under the brand
    assert rows["header"] < 110, rows


def test_no_page_scrolls_sideways_at_800(
    browser_page: Any, live_url: str, acme_marketer: Any, one_import: None
) -> None:
    page = browser_page
    page.set_viewport_size({"width": 800, "height": 900})
    _sign_in(page, live_url, acme_marketer)
    wide = {}
    for url in NARROW_PAGES:
        page.goto(url)
        expect(page.locator("h1").first).to_be_visible()
        width = page.evaluate("() => document.documentElement.scrollWidth")
        if width > 800:
            wide[url] = width
        if url == "/o/acme/":
            rows = _nav_rows(page)
            assert len(rows["tops"]) <= 2 and rows["header"] < 150, rows
    assert page.goto("/o/acme/audiences/imports/") and page.get_by_text("Layout check audience").first.is_visible()
    assert not wide, f"pages wider than the 800 px window: {wide}"


def test_segment_rule_is_one_sentence_and_property_follows_the_measure(
    browser_page: Any, live_url: str, acme_marketer: Any
) -> None:
    page = browser_page
    page.set_viewport_size({"width": 1366, "height": 900})
    _sign_in(page, live_url, acme_marketer)
    page.goto("/o/acme/segments/new/")
    tops = page.evaluate(
        """() => ['#attribute', '#event_type', '#operator', '#value']
                 .map(s => Math.round(document.querySelector(s).getBoundingClientRect().top))"""
    )
    assert max(tops) - min(tops) < 8, tops  # side by side, not stacked full-width selects
    expect(page.locator("#property")).to_be_hidden()  # a count reads no property
    page.select_option("#attribute", "sum")
    expect(page.locator("#property")).to_be_visible()
    for control in ("#name", "#value", "#window_minutes"):
        assert page.eval_on_selector(control, "e => getComputedStyle(e).borderTopLeftRadius") == "8px", control


def test_a_change_form_with_a_two_box_chooser_fits_1366(browser_page: Any, live_url: str, manager: Any) -> None:
    """The campaign form's audiences chooser made the whole form wider than the window (static/p360/admin.css)."""
    ids = tree(Organization.objects.get(slug="acme"))
    page = browser_page
    page.set_viewport_size({"width": 1366, "height": 900})
    _sign_in(page, live_url, manager)
    page.goto(f"/o/acme/admin/campaigns/campaign/{ids['campaign']}/change/")
    expect(page.locator(".selector-chosen")).to_be_visible()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1366
    chosen = page.locator(".selector-chosen").bounding_box()
    assert chosen and chosen["x"] + chosen["width"] <= 1366, chosen  # the "Chosen" box is not cut off


def test_the_account_menu_closes_with_escape_and_an_outside_click(
    browser_page: Any, live_url: str, acme_marketer: Any
) -> None:
    page = browser_page
    _sign_in(page, live_url, acme_marketer)
    page.goto("/o/acme/")
    menu = page.locator("details.user-menu")
    menu.locator("summary").focus()
    page.keyboard.press("Enter")
    expect(menu).to_have_attribute("open", "")
    page.keyboard.press("Escape")
    expect(menu).not_to_have_attribute("open", "")
    assert page.evaluate("() => document.activeElement.closest('details.user-menu') !== null")  # focus stays put
    menu.locator("summary").click()
    expect(menu).to_have_attribute("open", "")
    page.locator("h1").click()
    expect(menu).not_to_have_attribute("open", "")


def test_a_one_org_user_gets_a_link_home_from_global_pages(
    browser_page: Any, live_url: str, acme_marketer: Any
) -> None:
    """/profile/ showed an organisation menu reading "choose…" and no way back but the logo."""
    page = browser_page
    _sign_in(page, live_url, acme_marketer)
    page.goto("/profile/")
    expect(page.locator("details.org-switcher")).to_have_count(0)
    page.locator("a.org-home-link").click()
    expect(page.locator("h1")).to_have_text("Acme Corporation")
    assert page.url.endswith("/o/acme/")


@pytest.mark.parametrize("width", [1366, 800])
def test_the_column_mapping_selects_fit_their_longest_option(
    browser_page: Any, live_url: str, acme_marketer: Any, tmp_path: Path, settings: Any, width: int
) -> None:
    """The "Load as" selects were narrower than "Keep as a custom field" (a full-width select in a narrow cell)."""
    from django_tenants.utils import schema_context

    from audiences.services import import_create

    settings.DATA_DIR = tmp_path
    path = tmp_path / "wide.csv"
    samples = ",".join(["a-rather-long-sample-value-of-thirty-two"] * 4)
    path.write_text(f"Work Email,Custom thing,Another custom column,Notes\n{samples}\n")
    with schema_context("org_acme"):
        imp = import_create(audience_name="Mapping widths", source_name="wide.csv", actor=acme_marketer, path=path)
    page = browser_page
    page.set_viewport_size({"width": width, "height": 900})
    _sign_in(page, live_url, acme_marketer)
    page.goto(f"/o/acme/audiences/imports/{imp.pk}/map/")
    expect(page.locator("#map-0")).to_be_visible()
    # Each select's own width against the width it takes when left to size itself (its longest option).
    short = page.evaluate(
        """() => [...document.querySelectorAll('.mapping select')].map(s => {
             const probe = s.cloneNode(true); probe.style.width = 'max-content'; probe.style.minWidth = '0';
             s.parentNode.appendChild(probe); const need = probe.getBoundingClientRect().width; probe.remove();
             return [s.id, Math.round(s.getBoundingClientRect().width), Math.round(need)];
           }).filter(([, has, need]) => has < need - 1)"""
    )
    assert not short, f"selects narrower than their longest option (id, width, needed): {short}"
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
