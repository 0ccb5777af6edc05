"""Issue 15 item 14: a favicon on every page (no 404 and console error for /favicon.ico)."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

pytestmark = pytest.mark.django_db

ICON = "/static/p360/favicon.svg"


def test_favicon_ico_points_at_the_portal_icon_which_exists():
    response = Client().get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == ICON
    assert finders.find("p360/favicon.svg")


@pytest.mark.parametrize("url", ["/accounts/login/", "/orgs/", "/o/acme/reports/", "/admin/", "/o/acme/admin/"])
def test_pages_and_admins_name_the_icon(login, super_admin, url):
    client = Client() if url.startswith("/accounts/") else login(super_admin)
    page = client.get(url).content.decode()
    assert 'rel="icon"' in page and ICON in page, url
