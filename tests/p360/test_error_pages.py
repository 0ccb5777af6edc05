"""Issue 15 items 9-10: no admin redirect loop; the JSON error body on every API path and the
branded 404 on pages, with DEBUG on (the `make up` default) as well as off."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def _error_body(response):  # type: ignore[no-untyped-def]
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    body = response.json()
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]


@pytest.mark.parametrize("url", ["/admin/", "/admin/login/?next=/admin/", "/o/acme/admin/", "/admin/tenants/user/"])
def test_signed_in_marketer_gets_branded_403_from_admin_not_a_login_loop(login, acme_marketer, url):
    client = login(acme_marketer)
    response = client.get(url, follow=True)
    assert len(response.redirect_chain) <= 1, response.redirect_chain
    assert response.status_code == 403
    assert b"Not allowed" in response.content and b"P360" in response.content


def test_marketer_gets_404_under_an_org_they_may_not_see(login, acme_marketer):
    response = login(acme_marketer).get("/o/globex/admin/", follow=True)
    assert response.redirect_chain == [] and response.status_code == 404


def test_anonymous_admin_visit_goes_to_login_once():
    for url in ("/admin/", "/o/acme/admin/"):
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")


def test_manager_admin_login_url_goes_to_the_dashboard(login, manager):
    response = login(manager).get("/admin/login/")
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert login(manager).get("/admin/").status_code == 200


@pytest.fixture(params=[True, False], ids=["debug", "nodebug"])
def debug_mode(request, settings):  # type: ignore[no-untyped-def]
    settings.DEBUG = request.param
    settings.P360_DEBUG_PAGES = False
    return request.param


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/no-such-endpoint",
        "/api/nothing-here/",
        "/o/no-such-org/api/v1/",
        "/o/globex/api/v1/audiences",  # an org this user may not see: same 404 as an unknown one
        "/o/acme/api/v1/no-such-endpoint",
        "/o/acme/api/v1/audiences/999999",
        "/o/acme/api/v1/imports/999999",
    ],
)
def test_api_404s_are_the_json_error_body_in_every_mode(login, acme_marketer, debug_mode, url):
    response = login(acme_marketer).get(url)
    assert response.status_code == 404
    assert _error_body(response)["code"] == "not_found"
    assert b"URLconf" not in response.content


@pytest.mark.parametrize("url", ["/no-such-page/", "/o/acme/no-such-page/", "/o/no-such-org/reports/"])
def test_pages_get_the_branded_404_even_with_debug_on(login, acme_marketer, debug_mode, url):
    response = login(acme_marketer).get(url)
    assert response.status_code == 404
    assert b"This page does not exist" in response.content
    assert b"URLconf" not in response.content and b"DEBUG = True" not in response.content


def test_developer_may_opt_in_to_the_debug_404_page(login, acme_marketer, settings):
    settings.DEBUG = True
    settings.P360_DEBUG_PAGES = True
    response = login(acme_marketer).get("/no-such-page/")
    assert response.status_code == 404 and b"DEBUG = True" in response.content
    assert login(acme_marketer).get("/api/v1/no-such-endpoint")["Content-Type"].startswith("application/json")
