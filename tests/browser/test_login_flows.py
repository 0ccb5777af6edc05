"""Real-browser login flows: a marketer, a campaign manager and a super admin sign in through the
allauth form and move between organisations (portal pages, org admin, the admin's org switcher).

Runs headless Debian Chromium against a live server over the session's test database (see
``conftest.py``: nothing is flushed, nothing the browser does is committed). Full-page screenshots
are written to ``var/screenshots/``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def sign_in(page: Any, email: str) -> None:
    page.goto("/accounts/login/")
    form = page.locator("form:has(input[name='login'])")
    form.locator("input[name='login']").fill(email)
    form.locator("input[name='password']").fill(PASSWORD)
    with page.expect_navigation():
        form.locator("button[type='submit']").click()
    expect(page.locator("form:has(input[name='login'])")).to_have_count(0)  # left the login page


def path_of(page: Any) -> str:
    return re.sub(r"^https?://[^/]+", "", page.url)


def shoot(page: Any, directory: Path, name: str) -> None:
    # animations="disabled": finish Alpine's x-transition fades so menus are captured fully opaque.
    page.screenshot(path=str(directory / name), full_page=True, animations="disabled")


def open_admin_site_dropdown(page: Any) -> Any:
    """Open Unfold's site dropdown (the org switcher) from the sidebar header; return its menu."""
    menu = page.locator("div[x-show='siteDropdownOpen']")
    expect(menu).to_be_hidden()
    page.locator("#site-name").click()  # the header's x-on:click toggles siteDropdownOpen
    expect(menu).to_be_visible()
    return menu


def menu_titles(menu: Any) -> list[str]:
    return [" ".join(text.split()) for text in menu.locator("a").all_inner_texts()]


def test_marketer_signs_in_to_their_org_and_cannot_open_another(browser_page, screenshot_dir):
    page = browser_page
    sign_in(page, "marketer@acme.test")

    assert path_of(page) == "/o/acme/"
    expect(page.locator("h1")).to_have_text("Acme Corporation")
    expect(page.get_by_text("acme-canary-audience-1", exact=True)).to_be_visible()
    expect(page.get_by_text("acme-canary-audience-2", exact=True)).to_be_visible()
    expect(page.get_by_text("globex-canary-audience-1")).to_have_count(0)
    # Staff-only links are not offered to a marketer.
    expect(page.locator("a[href='/admin/']")).to_have_count(0)
    expect(page.locator("a[href='/o/acme/admin/']")).to_have_count(0)
    shoot(page, screenshot_dir, "marketer-home.png")
    # The portal's org switcher (if shown at all) offers Acme only.
    switcher = page.locator("details.org-switcher")
    if switcher.count():
        switcher.locator("summary").click()
        expect(switcher.locator("a", has_text="Acme Corporation")).to_be_visible()
        expect(switcher.locator("a", has_text="Globex")).to_have_count(0)
        shoot(page, screenshot_dir, "marketer-org-switcher.png")

    response = page.goto("/o/globex/")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    expect(page.get_by_text("Globex")).to_have_count(0)  # the 404 never names the other org
    expect(page.get_by_text("globex-canary-audience-1")).to_have_count(0)
    shoot(page, screenshot_dir, "marketer-globex-404.png")


def test_campaign_manager_picks_org_opens_org_admin_and_switcher_lists_only_assigned_orgs(browser_page, screenshot_dir):
    page = browser_page
    sign_in(page, "manager@test.local")

    assert path_of(page) == "/orgs/"
    cards = page.locator(".org-card")
    expect(cards).to_have_count(1)
    expect(cards.first.locator("h2")).to_have_text("Acme Corporation")
    expect(page.get_by_text("Globex")).to_have_count(0)
    shoot(page, screenshot_dir, "manager-org-picker.png")

    page.goto("/o/acme/admin/")
    expect(page.locator("#site-name")).to_contain_text("Acme Corporation")
    expect(page.get_by_text("Globex")).to_have_count(0)
    shoot(page, screenshot_dir, "manager-org-admin.png")

    page.locator("a[href='/o/acme/admin/audiences/audience/']:visible").first.click()
    expect(page).to_have_url(re.compile(r"/o/acme/admin/audiences/audience/$"))
    expect(page.get_by_role("link", name="acme-canary-audience-1", exact=True)).to_be_visible()
    expect(page.get_by_text("globex-canary-audience-1")).to_have_count(0)

    menu = open_admin_site_dropdown(page)
    titles = menu_titles(menu)
    assert any("Global admin" in title for title in titles), titles
    assert any("Acme Corporation" in title for title in titles), titles
    assert not any("Globex" in title for title in titles), titles
    assert len(titles) == 2, titles
    shoot(page, screenshot_dir, "manager-admin-org-switcher.png")


def test_super_admin_switches_org_in_admin_and_stays_on_the_same_page(browser_page, screenshot_dir):
    page = browser_page
    sign_in(page, "admin@test.local")

    page.goto("/o/acme/admin/audiences/audience/")
    expect(page.get_by_role("link", name="acme-canary-audience-1", exact=True)).to_be_visible()

    menu = open_admin_site_dropdown(page)
    titles = menu_titles(menu)
    assert any("Global admin" in title for title in titles), titles
    assert any("Acme Corporation" in title for title in titles), titles
    assert any("Globex Industries" in title for title in titles), titles
    shoot(page, screenshot_dir, "admin-org-switcher-open.png")

    with page.expect_navigation():
        menu.locator("a", has_text="Globex Industries").click()

    assert path_of(page) == "/o/globex/admin/audiences/audience/"
    expect(page.locator("#site-name")).to_contain_text("Globex Industries")
    expect(page.get_by_role("link", name="globex-canary-audience-1", exact=True)).to_be_visible()
    expect(page.get_by_text("acme-canary-audience-1")).to_have_count(0)
    shoot(page, screenshot_dir, "admin-switched-to-globex.png")
