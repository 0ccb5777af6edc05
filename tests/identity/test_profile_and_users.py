"""Profile page (name, MFA, API tokens shown once / revoked / last used, visible orgs) and user
management in the global admin within the orgs an actor may manage."""

from __future__ import annotations

import pytest
from django.test import Client

from p360.core.audit.models import AuditEvent
from tenants.models import ApiToken, Membership, Role, User
from tenants.services import api_token_create

pytestmark = pytest.mark.django_db


def test_profile_shows_name_mfa_and_visible_orgs(login, acme_marketer, manager):
    client = login(acme_marketer)
    page = client.get("/profile/").content.decode()
    assert acme_marketer.email in page and "Acme Corporation" in page and "Globex" not in page
    assert "Two-factor authentication" in page and "/accounts/password/change/" in page
    assert client.post("/profile/", {"full_name": "Mara Marketer"}).status_code == 302
    acme_marketer.refresh_from_db()
    assert acme_marketer.full_name == "Mara Marketer"
    assert "Acme Corporation" in login(manager).get("/profile/").content.decode()
    assert Client().get("/profile/").status_code == 302  # anonymous: sign in first


def test_token_is_shown_once_works_then_revoked_is_refused_and_audited(login, acme_marketer, acme):
    client = login(acme_marketer)
    client.post("/profile/tokens/", {"name": "BI export"})
    page = client.get("/profile/").content.decode()
    token = ApiToken.objects.get(user=acme_marketer, name="BI export")
    start = page.index('id="new-token"')
    raw = page[start:].split(">", 1)[1].split("<", 1)[0].strip()
    assert raw.startswith("p360_") and token.prefix == raw[:12]
    assert raw not in client.get("/profile/").content.decode()  # shown once only
    api = Client()
    assert api.get("/o/acme/api/v1/", HTTP_AUTHORIZATION=f"Token {raw}").status_code == 200
    assert api.get("/o/globex/api/v1/", HTTP_AUTHORIZATION=f"Token {raw}").status_code == 404
    token.refresh_from_db()
    assert token.last_used_at is not None
    assert "never" not in client.get("/profile/").content.decode().split("BI export", 1)[1].split("</tr>", 1)[0]
    client.post(f"/profile/tokens/{token.pk}/revoke/")
    assert api.get("/o/acme/api/v1/", HTTP_AUTHORIZATION=f"Token {raw}").status_code == 401
    actions = list(AuditEvent.objects.filter(entity_id=str(token.pk)).values_list("action", flat=True))
    assert {"token.created", "token.revoked", "token.revoked_used"} <= set(actions)


def test_cannot_revoke_someone_elses_token(login, acme_marketer, globex_marketer):
    token, _raw = api_token_create(user=globex_marketer, name="theirs")
    assert login(acme_marketer).post(f"/profile/tokens/{token.pk}/revoke/").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_campaign_manager_manages_marketers_of_their_orgs_only(login, manager, acme, globex, globex_marketer):
    client = login(manager)
    created = client.post(
        "/admin/tenants/user/add/",
        {"email": "fresh@acme.test", "full_name": "Fresh", "role": "marketer", "orgs": [str(acme.pk)], "password": ""},
    )
    assert created.status_code == 302, created.content.decode()[:300]
    fresh = User.objects.get(email="fresh@acme.test")
    assert list(fresh.memberships.values_list("org__slug", flat=True)) == ["acme"]
    # A globex org is not offered and a globex user is invisible.
    refused = client.post(
        "/admin/tenants/user/add/",
        {"email": "x@globex.test", "role": "marketer", "orgs": [str(globex.pk)], "password": ""},
    )
    assert refused.status_code == 200 and not User.objects.filter(email="x@globex.test").exists()
    assert client.get(f"/admin/tenants/user/{globex_marketer.pk}/change/").status_code in (302, 404)
    # Deactivate and reactivate through the list action.
    client.post("/admin/tenants/user/", {"action": "deactivate_users", "_selected_action": [str(fresh.pk)]})
    fresh.refresh_from_db()
    assert not fresh.is_active
    client.post("/admin/tenants/user/", {"action": "activate_users", "_selected_action": [str(fresh.pk)]})
    fresh.refresh_from_db()
    assert fresh.is_active
    assert AuditEvent.objects.filter(action="user.deactivated", entity_id=str(fresh.pk), actor_id=manager.pk).exists()


def test_super_admin_assigns_a_campaign_manager_and_changes_roles(login, super_admin, manager, globex):
    client = login(super_admin)
    response = client.post("/admin/tenants/membership/add/", {"user": manager.pk, "org": globex.pk})
    assert response.status_code == 302
    assert Membership.objects.filter(user=manager, org=globex).exists()
    assert login(manager).get("/o/globex/admin/").status_code == 200
    event = AuditEvent.objects.filter(action="user.org_assigned", org_id=globex.pk).latest("id")
    assert event.actor_id == super_admin.pk
    from tenants.services import user_set_role

    user_set_role(user=manager, role=Role.SUPER_ADMIN, orgs=[], actor=super_admin)
    assert AuditEvent.objects.filter(action="user.role_changed", entity_id=str(manager.pk)).exists()


def test_global_audit_log_filters_by_actor_org_action_and_date(login, super_admin, manager, acme_marketer, acme):
    from tests.conftest import PASSWORD

    Client().post("/accounts/login/", {"login": acme_marketer.email, "password": PASSWORD})
    client = login(super_admin)
    base = "/admin/audit/auditevent/"
    by_actor = client.get(base, {"actor_email__icontains": "marketer@acme"}).content.decode()
    assert "auth.login" in by_actor and "manager@test.local" not in by_actor
    by_org = client.get(base, {"org": "acme", "action": "auth.login"})
    assert by_org.status_code == 200 and "marketer@acme.test" in by_org.content.decode()
    by_date = client.get(base, {"created_at_from_0": "2000-01-01", "created_at_from_1": "00:00"})
    assert by_date.status_code == 200
    # The org's campaign manager sees their marketer's sign-in; the sign-in row carries the org.
    assert "marketer@acme.test" in login(manager).get(base, {"action": "auth.login"}).content.decode()
