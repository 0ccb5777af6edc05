"""Customer sign-in with allauth: verification, password reset, MFA (TOTP, recovery codes), an org's
require_mfa, and brute-force protection that expires and never locks a victim out from elsewhere."""

from __future__ import annotations

from datetime import timedelta

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from p360.core.audit.models import AuditEvent
from tenants.services import org_update, user_create
from tests.conftest import PASSWORD
from tests.identity.helpers import last_link, password_login, signed_in, totp_code

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()  # allauth's rate limits and used TOTP codes live in the cache
    yield
    cache.clear()


def test_unverified_address_must_be_verified_before_sign_in(acme):
    user = user_create(email="new.person@acme.test", role="marketer", orgs=[acme])
    user.set_password("a-long-pass-phrase-9")
    user.save()
    client = Client()
    response = password_login(client, user.email, "a-long-pass-phrase-9")
    assert response.status_code == 302 and "confirm-email" in response["Location"]
    assert not signed_in(client)
    link = last_link()
    assert client.post(link).status_code == 302
    assert user.emailaddress_set.get().verified
    assert AuditEvent.objects.filter(action="auth.email_confirmed", actor_id=user.pk).exists()
    assert password_login(client, user.email, "a-long-pass-phrase-9").status_code == 302
    assert signed_in(client)


def _with_totp(user) -> str:
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return secret


def test_totp_sign_in_and_reused_code_refused(acme_marketer):
    secret = _with_totp(acme_marketer)
    client = Client()
    step = password_login(client, acme_marketer.email, PASSWORD)
    assert step["Location"] == "/accounts/2fa/authenticate/"
    assert not signed_in(client)
    code = totp_code(secret)
    assert client.post("/accounts/2fa/authenticate/", {"code": code}).status_code == 302
    assert signed_in(client)

    again = Client()
    password_login(again, acme_marketer.email, PASSWORD)
    refused = again.post("/accounts/2fa/authenticate/", {"code": code})
    assert refused.status_code == 200 and "Incorrect code" in refused.content.decode()
    assert not signed_in(again)
    assert AuditEvent.objects.filter(action="mfa.failed", actor_id=acme_marketer.pk).exists()


def test_recovery_codes_work_once(acme_marketer):
    _with_totp(acme_marketer)
    codes = RecoveryCodes.activate(acme_marketer).get_unused_codes()
    first = Client()
    password_login(first, acme_marketer.email, PASSWORD)
    first.post("/accounts/2fa/authenticate/", {"code": codes[0]})
    assert signed_in(first)
    second = Client()
    password_login(second, acme_marketer.email, PASSWORD)
    second.post("/accounts/2fa/authenticate/", {"code": codes[0]})
    assert not signed_in(second)
    second.post("/accounts/2fa/authenticate/", {"code": codes[1]})
    assert signed_in(second)


def test_password_reset_does_not_bypass_mfa(acme_marketer):
    secret = _with_totp(acme_marketer)
    client = Client()
    assert client.post("/accounts/password/reset/", {"email": acme_marketer.email}).status_code == 302
    link = last_link()
    response = client.get(link)
    assert response.status_code == 302  # allauth moves the key into the session
    set_page = response["Location"]
    done = client.post(set_page, {"password1": "brand-new-pass-360", "password2": "brand-new-pass-360"})
    assert done.status_code == 302
    assert not signed_in(client)  # a reset never signs in
    step = password_login(client, acme_marketer.email, "brand-new-pass-360")
    assert step["Location"] == "/accounts/2fa/authenticate/" and not signed_in(client)
    client.post("/accounts/2fa/authenticate/", {"code": totp_code(secret)})
    assert signed_in(client)
    assert AuditEvent.objects.filter(action="auth.password_reset", actor_id=acme_marketer.pk).exists()


def test_org_requiring_mfa_sends_marketers_to_set_up_first(
    acme, manager, acme_marketer, globex_marketer, login, django_capture_on_commit_callbacks
):
    org_update(org=acme, actor=manager, require_mfa=True)
    client = Client()
    password_login(client, acme_marketer.email, PASSWORD)
    assert signed_in(client)
    page = client.get("/o/acme/")
    assert page.status_code == 302 and page["Location"].startswith("/accounts/2fa/totp/activate/")
    api = client.get("/o/acme/api/v1/")
    assert api.status_code == 403 and api.json()["error"]["code"] == "mfa_required"
    assert client.get("/profile/").status_code == 302
    # Set it up through the pages, as the marketer would (allauth asks for the password again first).
    assert client.get("/accounts/2fa/totp/activate/")["Location"].startswith("/accounts/reauthenticate/")
    client.post("/accounts/reauthenticate/", {"password": PASSWORD})
    assert client.get("/accounts/2fa/totp/activate/").status_code == 200
    secret = client.session["mfa.totp.secret"]
    with django_capture_on_commit_callbacks(execute=True):  # allauth signals after commit
        activated = client.post("/accounts/2fa/totp/activate/", {"code": totp_code(secret)})
    assert activated.status_code == 302
    assert Authenticator.objects.filter(user=acme_marketer, type="totp").exists()
    assert client.get("/o/acme/").status_code == 200
    assert AuditEvent.objects.filter(action="mfa.added", actor_id=acme_marketer.pk, org_id=acme.pk).exists()
    # They cannot switch it off while the org requires it.
    totp = Authenticator.objects.get(user=acme_marketer, type="totp")
    from allauth.mfa.adapter import get_adapter

    assert not get_adapter().can_delete_authenticator(totp)
    # Other orgs' marketers and staff are unaffected.
    assert login(globex_marketer).get("/o/globex/").status_code == 200
    assert login(manager).get("/o/acme/").status_code == 200


def test_lockout_is_per_email_and_ip_and_expires(acme_marketer, settings):
    from axes.models import AccessAttempt

    settings.AXES_FAILURE_LIMIT = 3
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(3):
        password_login(attacker, acme_marketer.email, "wrong-guess")
    locked = password_login(attacker, acme_marketer.email, PASSWORD)
    assert locked.status_code == 429
    assert "paused" in locked.content.decode() and not signed_in(attacker)
    assert AuditEvent.objects.filter(action="auth.locked_out", actor_email=acme_marketer.email).exists()
    # The victim, elsewhere, is not locked out by the attacker.
    victim = Client(REMOTE_ADDR="198.51.100.7")
    assert password_login(victim, acme_marketer.email, PASSWORD).status_code == 302
    assert signed_in(victim)
    # The lock expires after the cool-off (attempts aged past it; allauth's own limit window too).
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    cache.clear()
    assert password_login(attacker, acme_marketer.email, PASSWORD).status_code == 302
    assert signed_in(attacker)


def test_failed_and_successful_password_logins_are_audited_with_method(acme_marketer):
    client = Client()
    password_login(client, acme_marketer.email, "nope")
    failed = AuditEvent.objects.filter(action="auth.login_failed").latest("id")
    assert failed.after["method"] == "password" and failed.ip == "127.0.0.1"
    password_login(client, acme_marketer.email, PASSWORD)
    ok = AuditEvent.objects.filter(action="auth.login", actor_id=acme_marketer.pk).latest("id")
    assert ok.after["method"] == "password"


def test_password_reset_is_rate_limited(acme_marketer):
    client = Client()
    statuses = [client.post("/accounts/password/reset/", {"email": acme_marketer.email}).status_code for _ in range(7)]
    assert 429 in statuses
    assert len(mail.outbox) <= 5


def test_failures_from_one_address_never_lock_the_victim_out_of_another(acme_marketer):
    """Issue 15: allauth's per-email limit let anyone lock a victim out from every IP."""
    for address in ("203.0.113.9", "203.0.113.10", "203.0.113.11"):  # one attacker, several addresses
        attacker = Client(REMOTE_ADDR=address)
        for _ in range(6):
            assert password_login(attacker, acme_marketer.email, "wrong-guess").status_code in (200, 429)
        # This (email, IP) pair is now limited: even the right password is refused from here.
        assert password_login(attacker, acme_marketer.email, PASSWORD).status_code in (200, 429)
        assert not signed_in(attacker)
    victim = Client(REMOTE_ADDR="198.51.100.7")
    response = password_login(victim, acme_marketer.email, PASSWORD)
    assert response.status_code == 302 and signed_in(victim)


def test_per_ip_limit_still_holds_across_emails(acme_marketer):
    attacker = Client(REMOTE_ADDR="203.0.113.20")
    statuses = [password_login(attacker, f"nobody{i}@example.test", "x").status_code for i in range(12)]
    body = password_login(attacker, acme_marketer.email, PASSWORD)
    assert not signed_in(attacker) and (429 in statuses or b"Too many" in body.content or body.status_code != 302)
