"""API: authentication, the error body for every 4xx/5xx, OpenAPI."""

from __future__ import annotations

import pytest

from p360.core.audit.models import AuditEvent
from tenants.services import api_token_create, api_token_revoke

pytestmark = pytest.mark.django_db


def assert_error_body(response, status, code):
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)


def test_unknown_api_url_gives_json_404(login, super_admin):
    assert_error_body(login(super_admin).get("/api/v1/nope/"), 404, "not_found")
    assert_error_body(login(super_admin).get("/o/acme/api/v1/nope"), 404, "not_found")


def test_other_org_api_gives_json_404(login, acme_marketer):
    assert_error_body(login(acme_marketer).get("/o/globex/api/v1/audiences/1"), 404, "not_found")


def test_missing_object_gives_json_404(login, acme_marketer):
    assert_error_body(login(acme_marketer).get("/o/acme/api/v1/audiences/999999"), 404, "not_found")


def test_anonymous_api_gives_json_401(client):
    assert_error_body(client.get("/api/v1/orgs/"), 401, "not_authenticated")
    assert_error_body(client.get("/o/acme/api/v1/"), 401, "not_authenticated")


def test_method_not_allowed_has_the_error_body(login, acme_marketer):
    assert_error_body(login(acme_marketer).delete("/o/acme/api/v1/audiences/1"), 405, "method_not_allowed")


def test_token_auth_reaches_what_the_user_may(client, manager):
    token, raw = api_token_create(user=manager, name="ci")
    response = client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {raw}")
    assert response.json() == {
        "id": manager.pk,
        "email": manager.email,
        "full_name": "",
        "role": "campaign_manager",
        "orgs": ["acme"],
    }
    assert client.get("/o/acme/api/v1/", HTTP_AUTHORIZATION=f"Token {raw}").json()["org"]["slug"] == "acme"
    token.refresh_from_db()
    assert token.last_used_at is not None
    assert token.token_hash != raw and raw not in token.token_hash


def test_revoked_and_bogus_tokens_are_rejected_and_revoked_use_is_audited(client, manager):
    token, raw = api_token_create(user=manager, name="old")
    api_token_revoke(token=token, actor=manager)
    assert_error_body(client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {raw}"), 401, "authentication_failed")
    assert AuditEvent.objects.filter(action="token.revoked_used", entity_id=str(token.pk)).exists()
    assert_error_body(client.get("/api/v1/me/", HTTP_AUTHORIZATION="Token bogus"), 401, "authentication_failed")


def test_token_of_deactivated_user_is_rejected(client, acme_marketer, super_admin):
    from tenants.services import user_set_active

    _, raw = api_token_create(user=acme_marketer, name="x")
    user_set_active(user=acme_marketer, active=False, actor=super_admin)
    assert client.get("/o/acme/api/v1/", HTTP_AUTHORIZATION=f"Token {raw}").status_code == 401


def test_openapi_schema_covers_global_and_org_endpoints(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/orgs/" in paths
    assert "/o/{slug}/api/v1/audiences/{id}" in paths
    assert client.get("/api/docs/").status_code == 200


def test_a_token_opens_the_api_but_not_pages_or_admins(client, super_admin):
    _, raw = api_token_create(user=super_admin, name="api only")
    headers = {"HTTP_AUTHORIZATION": f"Token {raw}"}
    assert client.get("/o/acme/api/v1/", **headers).status_code == 200
    for url in ("/admin/", "/o/acme/admin/", "/o/acme/"):
        response = client.get(url, **headers)
        assert response.status_code == 302 and "login" in response["Location"], url
