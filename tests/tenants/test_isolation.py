"""No organisation can see another's data, through any surface (trust checklist 1-3, 7)."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from audiences.models import Audience
from tenants.services import org_set_active

ORG_PAGES = ["/o/{slug}/", "/o/{slug}/admin/", "/o/{slug}/api/v1/"]
OBJECT_URLS = [
    "/o/{slug}/admin/audiences/audience/{pk}/change/",
    "/o/{slug}/admin/campaigns/campaign/{pk}/change/",
    "/o/{slug}/api/v1/audiences/{pk}",
    "/o/{slug}/api/v1/campaigns/{pk}",
]


@pytest.mark.parametrize("template", ORG_PAGES)
def test_marketer_gets_404_on_every_url_of_another_org(login, acme_marketer, template):
    assert login(acme_marketer).get(template.format(slug="globex")).status_code == 404


@pytest.mark.parametrize("template", OBJECT_URLS)
def test_guessing_an_id_that_exists_in_both_orgs_never_reaches_the_other(login, manager, template):
    client = login(manager)
    own = client.get(template.format(slug="acme", pk=1))
    assert own.status_code == 200
    assert b"acme-canary" in own.content and b"globex-canary" not in own.content
    assert client.get(template.format(slug="globex", pk=1)).status_code == 404


def test_org_admin_changelist_shows_only_the_orgs_rows(login, super_admin):
    client = login(super_admin)
    acme_page = client.get("/o/acme/admin/audiences/audience/").content.decode()
    globex_page = client.get("/o/globex/admin/audiences/audience/").content.decode()
    assert "acme-canary-audience-1" in acme_page and "globex-canary" not in acme_page
    assert "globex-canary-audience-1" in globex_page and "acme-canary" not in globex_page


def test_api_list_returns_only_the_orgs_rows(login, super_admin):
    rows = login(super_admin).get("/o/globex/api/v1/audiences").json()["results"]
    assert sorted(row["name"] for row in rows) == ["globex-canary-audience-1", "globex-canary-audience-2"]


def test_campaign_manager_reaches_only_assigned_orgs(login, manager):
    client = login(manager)
    assert client.get("/o/acme/").status_code == 200
    assert client.get("/o/acme/admin/").status_code == 200
    for template in ORG_PAGES:
        assert client.get(template.format(slug="globex")).status_code == 404


def test_marketer_cannot_use_the_org_admin_even_of_their_org(login, acme_marketer):
    response = login(acme_marketer).get("/o/acme/admin/audiences/audience/")
    assert response.status_code == 403  # signed in without admin rights: the branded 403 (issue 15)
    assert "acme-canary" not in response.content.decode()


def test_unknown_org_is_404_for_everyone(login, super_admin):
    client = login(super_admin)
    for template in ORG_PAGES:
        assert client.get(template.format(slug="no-such-org")).status_code == 404


def test_deactivated_org_is_404_for_everyone_and_keeps_its_data(login, super_admin, acme_marketer, acme):
    org_set_active(org=acme, active=False, actor=super_admin)
    for user in (super_admin, acme_marketer):
        for template in ORG_PAGES:
            assert login(user).get(template.format(slug="acme")).status_code == 404
    with schema_context(acme.schema_name):
        assert Audience.objects.filter(name="acme-canary-audience-1").exists()


def test_anonymous_is_sent_to_login_whether_or_not_the_org_exists(client):
    known, unknown = client.get("/o/acme/"), client.get("/o/no-such-org/")
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == "/accounts/login/?next=/o/acme/"
    assert client.get("/o/acme/api/v1/").status_code == client.get("/o/no-such-org/api/v1/").status_code == 401


def test_global_api_lists_exactly_the_visible_orgs(login, super_admin, manager, acme_marketer, globex_marketer):
    def slugs(user):
        return [row["slug"] for row in login(user).get("/api/v1/orgs/").json()["results"]]

    assert slugs(super_admin) == ["acme", "globex"]
    assert slugs(manager) == ["acme"]
    assert slugs(acme_marketer) == ["acme"]
    assert slugs(globex_marketer) == ["globex"]


def test_token_of_one_org_user_cannot_read_another_org(acme_marketer, client):
    from tenants.services import api_token_create

    _, raw = api_token_create(user=acme_marketer, name="t")
    headers = {"HTTP_AUTHORIZATION": f"Token {raw}"}
    assert client.get("/o/acme/api/v1/audiences/1", **headers).status_code == 200
    assert client.get("/o/globex/api/v1/audiences/1", **headers).status_code == 404


def test_cache_entries_are_keyed_by_schema(acme, globex):
    from django.core.cache import cache

    with schema_context(acme.schema_name):
        cache.set("canary", "acme-secret")
    with schema_context(globex.schema_name):
        assert cache.get("canary") is None
        cache.set("canary", "globex-secret")
    with schema_context(acme.schema_name):
        assert cache.get("canary") == "acme-secret"


def test_alternating_requests_across_orgs_never_leak(login, super_admin):
    client = login(super_admin)
    for _ in range(10):
        for slug, other in (("acme", "globex"), ("globex", "acme")):
            body = client.get(f"/o/{slug}/api/v1/audiences/1").json()
            assert body["name"] == f"{slug}-canary-audience-1", other


def test_rolled_back_savepoint_does_not_leave_the_connection_in_another_schema(acme, globex):
    from django.db import connection, transaction

    with schema_context(acme.schema_name):
        try:
            with transaction.atomic():
                connection.set_tenant(globex)
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        connection.set_schema(acme.schema_name)
        assert Audience.objects.get(pk=1).name == "acme-canary-audience-1"
