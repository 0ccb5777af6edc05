"""Staff SSO through mozilla-django-oidc against the local Entra-shaped provider over real HTTP."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from p360.core.audit.models import AuditEvent
from tenants.models import ExternalIdentity, IdentityProvider, Membership, Role, User
from tests.identity.conftest import CM_ROLE, SA_ROLE, sso_login

pytestmark = pytest.mark.django_db


def _link(user: User, provider, oid: str) -> None:
    ExternalIdentity.objects.create(user=user, provider=IdentityProvider.ENTRA, tenant=provider.tenant_id, subject=oid)


def test_campaign_manager_lands_in_admin_with_exactly_their_orgs(entra, acme, globex):
    from tenants.services import user_create

    cm = user_create(email="cm.sso@p360.test", role=Role.CAMPAIGN_MANAGER, orgs=[acme])
    oid = entra.add_user(email="cm.sso@p360.test", roles=[CM_ROLE], name="Casey Manager")
    _link(cm, entra, oid)
    client = Client()
    response = sso_login(client, entra)
    assert response.status_code == 302 and response["Location"] == "/admin/"
    page = client.get("/admin/tenants/organization/").content.decode()
    assert "Acme Corporation" in page and "Globex Industries" not in page
    assert client.get("/o/acme/admin/").status_code == 200
    assert client.get("/o/globex/admin/").status_code == 404
    # PKCE and the code went over HTTP to the provider's token endpoint.
    exchange = entra.token_requests[-1]
    assert exchange["grant_type"] == "authorization_code" and len(exchange["code_verifier"]) >= 43
    login = AuditEvent.objects.filter(action="auth.login", actor_id=cm.pk).latest("id")
    assert login.after["method"] == "entra" and login.ip == "127.0.0.1"
    cm.refresh_from_db()
    assert cm.full_name == "Casey Manager"


def test_first_sign_in_creates_staff_user_keyed_by_tid_and_oid(entra):
    oid = entra.add_user(email="new.admin@p360.test", roles=[SA_ROLE])
    client = Client()
    assert sso_login(client, entra).status_code == 302
    identity = ExternalIdentity.objects.get(subject=oid)
    assert identity.tenant == entra.tenant_id and identity.user.role == Role.SUPER_ADMIN
    assert not identity.user.has_usable_password()
    assert client.get("/admin/").status_code == 200


def test_email_never_links_an_existing_account(entra, acme_marketer):
    """An Entra user whose email matches a local account gets no access to it."""
    entra.add_user(email=acme_marketer.email, roles=[CM_ROLE])
    client = Client()
    response = sso_login(client, entra)
    assert response.status_code == 403
    assert "not linked" in response.content.decode()
    assert "_auth_user_id" not in client.session
    event = AuditEvent.objects.filter(action="auth.login_failed").latest("id")
    assert event.after["reason"] == "email_taken" and event.after["method"] == "entra"


def test_role_is_resynced_at_every_login(entra, acme):
    oid = entra.add_user(email="flip@p360.test", roles=[CM_ROLE])
    client = Client()
    sso_login(client, entra)
    user = User.objects.get(email="flip@p360.test")
    assert user.role == Role.CAMPAIGN_MANAGER
    entra.users[oid].claims["roles"] = [SA_ROLE, CM_ROLE]
    sso_login(Client(), entra)
    user.refresh_from_db()
    assert user.role == Role.SUPER_ADMIN and user.is_superuser
    entra.users[oid].claims["roles"] = [CM_ROLE]
    sso_login(Client(), entra)
    user.refresh_from_db()
    assert user.role == Role.CAMPAIGN_MANAGER and not user.is_superuser
    assert AuditEvent.objects.filter(action="user.role_changed", entity_id=str(user.pk)).count() == 2


def test_group_ids_map_to_roles(entra, settings):
    settings.ENTRA_GROUP_MAP = {"0b3f-group": "campaign_manager"}
    entra.add_user(email="grouped@p360.test", roles=[], groups=["0b3f-group", "other"])
    assert sso_login(Client(), entra).status_code == 302
    assert User.objects.get(email="grouped@p360.test").role == Role.CAMPAIGN_MANAGER


def test_no_mapped_role_is_refused(entra):
    entra.add_user(email="nobody@p360.test", roles=["Some.OtherApp"])
    response = sso_login(Client(), entra)
    assert response.status_code == 403 and "no P360 role" in response.content.decode()
    assert not User.objects.filter(email="nobody@p360.test").exists()


@pytest.mark.parametrize(
    ("fault", "reason", "text"),
    [
        ("wrong_aud", "wrong_audience", "another application"),
        ("wrong_iss", "wrong_issuer", "unexpected issuer"),
        ("wrong_tid", "wrong_tenant", "another Microsoft tenant"),
        ("expired", "expired", "expired"),
        ("other_key", "bad_signature", "signature"),
        ("unknown_kid", "unknown_key", "key"),
        ("replayed_nonce", "nonce_mismatch", "nonce"),
        ("hs256", "wrong_algorithm", "RS256"),
    ],
)
def test_bad_tokens_are_refused_with_a_clear_page_and_an_audit_row(entra, acme, fault, reason, text):
    from tenants.services import user_create

    cm = user_create(email="cm.bad@p360.test", role=Role.CAMPAIGN_MANAGER, orgs=[acme])
    oid = entra.add_user(email=cm.email, roles=[CM_ROLE])
    _link(cm, entra, oid)
    if fault == "replayed_nonce":
        sso_login(Client(), entra)  # an earlier, legitimate sign-in whose nonce the bad token reuses
    entra.fault = fault
    client = Client()
    response = sso_login(client, entra)
    assert response.status_code == 403
    body = response.content.decode()
    assert "Sign-in refused" in body and text in body
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302  # still anonymous: sent to the login page
    event = AuditEvent.objects.filter(action="auth.login_failed").latest("id")
    assert event.after["reason"] == reason and event.after["method"] == "entra" and event.ip == "127.0.0.1"


def test_replayed_callback_is_refused(entra, acme):
    entra.add_user(email="replay@p360.test", roles=[CM_ROLE])
    client = Client()
    start = client.get("/oidc/authenticate/")
    import httpx

    answer = httpx.get(start["Location"], follow_redirects=False)
    callback = answer.headers["Location"].replace("http://testserver", "")
    assert client.get(callback).status_code == 302
    client.post("/accounts/logout/")
    again = client.get(callback)
    assert again.status_code == 403
    assert AuditEvent.objects.filter(action="auth.login_failed").latest("id").after["method"] == "entra"


def _expire_session(client: Client) -> None:
    session = client.session
    session["oidc_id_token_expiration"] = time.time() - 1
    session.save()


def test_removing_the_app_role_blocks_the_next_post(entra, acme):
    from tenants.services import user_create

    cm = user_create(email="cm.post@p360.test", role=Role.CAMPAIGN_MANAGER, orgs=[acme])
    oid = entra.add_user(email=cm.email, roles=[CM_ROLE])
    _link(cm, entra, oid)
    client = Client()
    sso_login(client, entra)
    target = User.objects.get(email="marketer@acme.test")
    # With the role still assigned, a POST after the refresh window refreshes silently and is served.
    _expire_session(client)
    ok = client.post(f"/admin/tenants/user/{target.pk}/change/", _user_form(target, full_name="Renamed Once"))
    assert ok.status_code == 302, ok.content.decode()[:500]
    target.refresh_from_db()
    assert target.full_name == "Renamed Once"
    assert entra.token_requests[-1]["grant_type"] == "refresh_token"

    entra.users[oid].claims["roles"] = []  # the app role is removed at the provider
    _expire_session(client)
    blocked = client.post(f"/admin/tenants/user/{target.pk}/change/", _user_form(target, full_name="Renamed Twice"))
    assert blocked.status_code == 401
    assert "nothing was saved" in blocked.content.decode()
    target.refresh_from_db()
    assert target.full_name == "Renamed Once"
    cm.refresh_from_db()
    assert not cm.is_active  # so API tokens stop too
    assert client.get("/admin/").status_code == 302  # signed out
    event = AuditEvent.objects.filter(action="auth.session_refresh_failed").latest("id")
    assert event.after["reason"] == "no_role" and event.after["http_method"] == "POST"
    # The role comes back: the next sign-in reactivates the account it deactivated itself.
    entra.users[oid].claims["roles"] = [CM_ROLE]
    assert sso_login(Client(), entra).status_code == 302
    cm.refresh_from_db()
    assert cm.is_active and Membership.objects.filter(user=cm, org=acme).exists()


def test_user_disabled_at_the_provider_loses_access_on_get(entra, acme):
    oid = entra.add_user(email="gone@p360.test", roles=[CM_ROLE])
    client = Client()
    sso_login(client, entra)
    assert client.get("/admin/").status_code == 200
    entra.users[oid].enabled = False
    _expire_session(client)
    response = client.get("/admin/")
    assert response.status_code == 401
    assert client.get("/admin/").status_code == 302


def test_admin_deactivation_is_not_undone_by_sso(entra):
    from tenants.services import user_set_active

    entra.add_user(email="held@p360.test", roles=[CM_ROLE])
    sso_login(Client(), entra)
    user = User.objects.get(email="held@p360.test")
    user_set_active(user=user, active=False, actor=None)
    response = sso_login(Client(), entra)
    assert response.status_code == 403 and "deactivated" in response.content.decode()


def test_login_page_offers_microsoft_only_when_configured(client, settings, entra):
    assert "Sign in with Microsoft" in client.get("/accounts/login/").content.decode()
    settings.ENTRA_SSO_ENABLED = False
    assert "Sign in with Microsoft" not in client.get("/accounts/login/").content.decode()


def _user_form(user: User, **changes: str) -> dict[str, str]:
    data = {
        "email": user.email,
        "full_name": user.full_name,
        "role": user.role,
        "orgs": [str(pk) for pk in user.memberships.values_list("org_id", flat=True)],
        "is_active": "on",
        "password": "",
    }
    data.update(changes)
    return data  # type: ignore[return-value]


def test_without_refresh_token_get_signs_in_again_and_post_is_refused(entra, acme):
    from tenants.oidc import REFRESH_TOKEN_KEY

    entra.add_user(email="nort@p360.test", roles=[CM_ROLE])
    client = Client()
    sso_login(client, entra)
    session = client.session
    del session[REFRESH_TOKEN_KEY]
    session["oidc_id_token_expiration"] = time.time() - 1
    session.save()
    again = client.get("/admin/")
    assert again.status_code == 302 and again["Location"].startswith("/oidc/authenticate/?next=")
    refused = client.post("/admin/tenants/user/", {"action": "deactivate_users", "_selected_action": []})
    assert refused.status_code == 401 and "nothing was saved" in refused.content.decode()


def test_sso_urls_when_not_configured(client, settings):
    settings.ENTRA_SSO_ENABLED = False
    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/?code=x&state=y").status_code == 404
    assert "Sign in with Microsoft" not in client.get("/accounts/login/").content.decode()


def test_api_request_with_ended_sso_session_gets_json_401(entra, acme):
    oid = entra.add_user(email="api.sso@p360.test", roles=[CM_ROLE])
    client = Client()
    sso_login(client, entra)
    entra.users[oid].enabled = False
    _expire_session(client)
    response = client.get("/api/v1/me/")
    assert response.status_code == 401 and response.json()["error"]["code"] == "session_ended"


def test_sso_staff_cannot_get_a_local_password_by_reset(entra):
    from django.core import mail

    entra.add_user(email="sso.reset@p360.test", roles=[CM_ROLE])
    sso_login(Client(), entra)
    client = Client()
    client.post("/accounts/password/reset/", {"email": "sso.reset@p360.test"})
    assert (
        "Sign in with Microsoft" in mail.outbox[-1].body and "/accounts/password/reset/key/" not in mail.outbox[-1].body
    )
    assert AuditEvent.objects.filter(action="auth.password_reset_refused").exists()
    user = User.objects.get(email="sso.reset@p360.test")
    assert not user.has_usable_password()


def test_provider_error_is_shown_and_audited_once(entra):
    oid = entra.add_user(email="off@p360.test", roles=[CM_ROLE])
    entra.users[oid].enabled = False
    before = AuditEvent.objects.filter(action="auth.login_failed").count()
    response = sso_login(Client(), entra)
    assert response.status_code == 403 and "disabled" in response.content.decode()
    assert AuditEvent.objects.filter(action="auth.login_failed").count() == before + 1
    assert AuditEvent.objects.filter(action="auth.login_failed").latest("id").after["reason"] == "provider_error"


def test_deactivation_in_p360_ends_an_sso_session_immediately(entra, super_admin):
    from tenants.services import user_set_active

    entra.add_user(email="now@p360.test", roles=[CM_ROLE])
    client = Client()
    sso_login(client, entra)
    assert client.get("/admin/").status_code == 200
    user_set_active(user=User.objects.get(email="now@p360.test"), active=False, actor=super_admin)
    assert client.get("/admin/").status_code == 302  # anonymous again, without waiting for a refresh
