"""Auth0 customer sign-in through allauth's OpenID Connect provider (`server_url`) against the local
provider in Auth0 style: invitation acceptance links the Auth0 subject, later sign-ins use it, and the
namespaced roles/org claims are enforced where present."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from allauth.socialaccount.models import SocialAccount
from django.core.cache import cache
from django.test import Client

from p360.core.audit.models import AuditEvent
from tenants import invitations
from tenants.models import User
from tests.identity.helpers import last_link, signed_in
from tests.oidc_provider import OIDCProvider

pytestmark = pytest.mark.django_db

ROLES = "https://p360.app/roles"
ORG = "https://p360.app/org"


@pytest.fixture
def auth0(settings: Any) -> Iterator[OIDCProvider]:
    provider = OIDCProvider(style="auth0").start()
    settings.AUTH0_URL = provider.url
    settings.SOCIALACCOUNT_PROVIDERS = {
        "openid_connect": {
            "APPS": [
                {
                    "provider_id": "auth0",
                    "name": "Auth0",
                    "client_id": provider.client_id,
                    "secret": provider.client_secret,
                    "settings": {
                        "server_url": provider.url,
                        "fetch_userinfo": False,
                        "oauth_pkce_enabled": True,
                        "token_auth_method": "client_secret_post",
                    },
                }
            ]
        }
    }
    cache.clear()
    try:
        yield provider
    finally:
        provider.stop()


def auth0_login(client: Client, provider: OIDCProvider) -> Any:
    start = client.post("/accounts/oidc/auth0/login/")
    assert start.status_code == 302 and start["Location"].startswith(provider.url + "/authorize"), start
    answer = httpx.get(start["Location"], follow_redirects=False)
    callback = urlparse(answer.headers["Location"])
    return client.get(f"{callback.path}?{callback.query}")


def _claims(org: str = "acme") -> dict[str, Any]:
    return {ROLES: ["p360-marketer"], ORG: org, "email_verified": True}


def _invite(manager: Any, acme: Any, email: str) -> str:
    invitations.invitation_create(org=acme, email=email, role="marketer", actor=manager, base_url="http://testserver/")
    return last_link()


def test_invitation_accepted_with_auth0_then_auth0_signs_in(auth0, manager, acme):
    link = _invite(manager, acme, "ana@acme.test")
    oid = auth0.add_user(email="ana@acme.test", extra=_claims())
    client = Client()
    page = client.get(link).content.decode()
    assert "Continue with Auth0" in page
    hop = client.post(link, {"method": "auth0"})
    assert hop["Location"].startswith("/accounts/oidc/auth0/login/")
    response = auth0_login(client, auth0)
    assert response.status_code == 302, response.content.decode()[:400]
    user = User.objects.get(email="ana@acme.test")
    assert SocialAccount.objects.get(user=user).uid == f"sub-{oid}"
    assert signed_in(client) and client.get("/o/acme/").status_code == 200
    assert client.get("/o/globex/").status_code == 404
    # PKCE went to the provider.
    assert auth0.token_requests[-1].get("code_verifier")

    again = Client()
    assert auth0_login(again, auth0).status_code == 302 and signed_in(again)
    login = AuditEvent.objects.filter(action="auth.login", actor_id=user.pk).latest("id")
    assert login.after["method"] == "auth0"


def test_unknown_auth0_identity_is_refused_never_matched_by_email(auth0, acme_marketer):
    auth0.add_user(email=acme_marketer.email, extra=_claims())
    client = Client()
    response = auth0_login(client, auth0)
    assert response.status_code == 403 and "invitation" in response.content.decode()
    assert not signed_in(client)
    assert AuditEvent.objects.filter(action="auth.login_failed").latest("id").after["reason"] == "unknown_identity"


def test_org_claim_must_match_the_users_org(auth0, manager, acme):
    link = _invite(manager, acme, "wrong@acme.test")
    auth0.add_user(email="wrong@acme.test", extra=_claims(org="globex"))
    client = Client()
    client.post(link, {"method": "auth0"})
    response = auth0_login(client, auth0)
    assert response.status_code == 403 and "another organisation" in response.content.decode()
    assert not User.objects.filter(email="wrong@acme.test").exists()


def test_roles_claim_without_a_p360_role_is_refused(auth0, manager, acme):
    link = _invite(manager, acme, "norole@acme.test")
    auth0.add_user(email="norole@acme.test", extra={ROLES: ["something-else"], "email_verified": True})
    client = Client()
    client.post(link, {"method": "auth0"})
    assert auth0_login(client, auth0).status_code == 403
    assert not signed_in(client)


def test_id_token_for_another_client_is_refused_and_audited(auth0, manager, acme):
    link = _invite(manager, acme, "aud@acme.test")
    auth0.add_user(email="aud@acme.test", extra=_claims())
    auth0.fault = "wrong_aud"
    client = Client()
    client.post(link, {"method": "auth0"})
    response = auth0_login(client, auth0)
    assert not signed_in(client) and not User.objects.filter(email="aud@acme.test").exists()
    assert response.status_code == 401  # allauth's "authentication error" page
    event = AuditEvent.objects.filter(action="auth.login_failed").latest("id")
    assert event.after["method"] == "auth0" and event.after["reason"] == "provider_error"
