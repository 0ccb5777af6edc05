"""Org admin for built audiences: list with cache stats, tree and versions on the change page, refresh action,
and isolation (another org's admin never lists them)."""

from __future__ import annotations

from typing import Any

import pytest
from django_tenants.utils import schema_context

from audiences.models import AudienceCount
from tests.audiences.builder_helpers import fresh_cache, make_imported  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]
TREE = {"op": "and", "children": [{"field": "country", "operator": "eq", "value": "US"}]}


@pytest.fixture
def saved(acme: Any, super_admin: Any) -> Any:
    from audiences.saved import built_audience_create

    with schema_context("org_acme"):
        make_imported("CRM", [{"country": "US"}, {"country": "DE"}, {"country": "us"}])
        return built_audience_create(name="US people", tree=TREE, actor=super_admin)


def test_admin_lists_built_audiences_with_cache_stats(saved: Any, super_admin: Any, login: Any) -> None:
    client = login(super_admin)
    client.post("/o/acme/api/v1/audiences/preview", {"tree": TREE}, content_type="application/json")
    page = client.get("/o/acme/admin/audiences/builtaudience/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "US people" in body and "canary" not in body  # imported audiences are not listed here
    assert "Builder cache" in body and "3 people" in body
    detail = client.get(f"/o/acme/admin/audiences/builtaudience/{saved.pk}/change/").content.decode()
    assert "&quot;country&quot;" in body or "&quot;country&quot;" in detail
    assert "created with 1 condition(s)" in detail and "members?format=csv" in detail


def test_admin_refresh_action(saved: Any, super_admin: Any, login: Any) -> None:
    client = login(super_admin)
    response = client.post(
        "/o/acme/admin/audiences/builtaudience/",
        {"action": "refresh_members", "_selected_action": [saved.pk]},
        follow=True,
    )
    assert response.status_code == 200 and "US people: 2 members." in response.content.decode()
    with schema_context("org_acme"):
        assert list(AudienceCount.objects.filter(audience=saved).values_list("reason", flat=True)) == [
            "created",
            "admin",
        ]


def test_other_org_admin_does_not_list_them(saved: Any, super_admin: Any, manager: Any, login: Any) -> None:
    page = login(super_admin).get("/o/globex/admin/audiences/builtaudience/")
    assert page.status_code == 200 and "US people" not in page.content.decode()
    assert login(manager).get(f"/o/globex/admin/audiences/builtaudience/{saved.pk}/change/").status_code == 404
