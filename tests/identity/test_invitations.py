"""Invitations: created by a campaign manager (their orgs) or a super admin, a signed single-use link
that expires, resend/revoke from the admin list, and the invitee's first sign-in with MFA."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from p360.core.audit.models import AuditEvent
from tenants import invitations
from tenants.models import Invitation, Membership, Role, User
from tenants.services import ServiceError, org_update
from tests.identity.helpers import last_link, signed_in, totp_code

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-fresh-pass-phrase-42"


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()


def _invite_via_admin(client: Client, org, email: str, role: str = "marketer"):
    return client.post("/admin/tenants/invitation/add/", {"email": email, "org": org.pk, "role": role})


def test_campaign_manager_invites_marketer_who_accepts_sets_up_mfa_and_sees_only_their_org(
    login, manager, acme, globex, django_capture_on_commit_callbacks
):
    org_update(org=acme, actor=manager, require_mfa=True)
    response = _invite_via_admin(login(manager), acme, "Dana@Acme.test")
    assert response.status_code == 302, response.content.decode()[:400]
    invitation = Invitation.objects.get(email="dana@acme.test")
    assert invitation.status == "pending" and invitation.invited_by == manager
    assert "Acme Corporation" in mail.outbox[-1].subject
    link = last_link()

    invitee = Client()
    page = invitee.get(link)
    assert page.status_code == 200 and "dana@acme.test" in page.content.decode()
    accepted = invitee.post(link, {"full_name": "Dana", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert accepted.status_code == 302 and accepted["Location"] == "/o/acme/"
    user = User.objects.get(email="dana@acme.test")
    assert user.role == Role.MARKETER and list(user.memberships.values_list("org__slug", flat=True)) == ["acme"]
    assert user.emailaddress_set.get().verified
    # The org requires MFA: first the set-up, then the org.
    assert invitee.get("/o/acme/")["Location"].startswith("/accounts/2fa/totp/activate/")
    assert invitee.get("/accounts/2fa/totp/activate/").status_code == 200
    secret = invitee.session["mfa.totp.secret"]
    with django_capture_on_commit_callbacks(execute=True):
        assert invitee.post("/accounts/2fa/totp/activate/", {"code": totp_code(secret)}).status_code == 302
    assert invitee.get("/o/acme/").status_code == 200
    assert invitee.get("/o/globex/").status_code == 404
    assert invitee.get("/admin/").status_code == 403  # signed in, not staff: a clear 403 (no login loop)
    assert invitee.get("/orgs/").status_code == 200
    # The link was single use.
    reused = Client().get(link)
    assert reused.status_code == 410 and "already been used" in reused.content.decode()
    actions = set(AuditEvent.objects.filter(org_id=acme.pk).values_list("action", flat=True))
    assert {"invitation.created", "invitation.accepted", "mfa.added"} <= actions
    # Next time the password alone is not enough: the authenticator code is asked for.
    later = Client()
    step = later.post("/accounts/login/", {"login": user.email, "password": NEW_PASSWORD})
    assert step["Location"] == "/accounts/2fa/authenticate/" and not signed_in(later)


def test_campaign_manager_cannot_invite_to_other_orgs_or_staff(manager, acme, globex, login):
    with pytest.raises(ServiceError):
        invitations.invitation_create(
            org=globex, email="x@globex.test", role="marketer", actor=manager, base_url="http://t/"
        )
    with pytest.raises(ServiceError):
        invitations.invitation_create(
            org=acme, email="x@acme.test", role="campaign_manager", actor=manager, base_url="http://t/"
        )
    page = login(manager).get("/admin/tenants/invitation/add/").content.decode()
    assert "Globex" not in page and "Campaign manager" not in page
    response = _invite_via_admin(login(manager), globex, "x@globex.test")
    assert response.status_code == 200 and not Invitation.objects.filter(email="x@globex.test").exists()


def test_super_admin_invites_a_campaign_manager(super_admin, acme, login):
    assert _invite_via_admin(login(super_admin), acme, "cm2@p360.test", "campaign_manager").status_code == 302
    link = last_link()
    client = Client()
    client.post(link, {"full_name": "", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    user = User.objects.get(email="cm2@p360.test")
    assert user.role == Role.CAMPAIGN_MANAGER and Membership.objects.filter(user=user, org=acme).exists()


def test_tampered_expired_revoked_and_superseded_links_are_refused(manager, acme):
    invitation = invitations.invitation_create(
        org=acme, email="t@acme.test", role="marketer", actor=manager, base_url="http://testserver/"
    )
    link = last_link()
    key = link.rstrip("/").rsplit("/", 1)[1]
    tampered = link.replace(key, key[:-2] + ("AA" if key[-2:] != "AA" else "BB"))
    assert Client().get(tampered).status_code == 410

    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    expired = Client().get(link)
    assert expired.status_code == 410 and "expired" in expired.content.decode()
    invitation.refresh_from_db()
    assert invitation.status == "expired"

    invitations.invitation_resend(invitation=invitation, actor=manager, base_url="http://testserver/")
    new_link = last_link()
    assert new_link != link
    superseded = Client().get(link)
    assert superseded.status_code == 410 and "newer invitation" in superseded.content.decode()
    assert Client().get(new_link).status_code == 200

    invitations.invitation_revoke(invitation=invitation, actor=manager)
    assert Client().get(new_link).status_code == 410
    assert not User.objects.filter(email="t@acme.test").exists()
    reasons = list(AuditEvent.objects.filter(action="invitation.refused").values_list("after__reason", flat=True))
    assert {"tampered", "expired", "superseded", "revoked"} <= set(reasons)


def test_invitation_list_shows_status_and_resend_revoke_actions(manager, acme, globex, super_admin, login):
    pending = invitations.invitation_create(
        org=acme, email="p@acme.test", role="marketer", actor=manager, base_url="http://t/"
    )
    old = invitations.invitation_create(
        org=acme, email="o@acme.test", role="marketer", actor=manager, base_url="http://t/"
    )
    Invitation.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(days=1))
    other = invitations.invitation_create(
        org=globex, email="g@globex.test", role="marketer", actor=super_admin, base_url="http://t/"
    )
    client = login(manager)
    page = client.get("/admin/tenants/invitation/").content.decode()
    assert "p@acme.test" in page and "o@acme.test" in page and "g@globex.test" not in page
    assert "pending" in page and "expired" in page
    assert "p@acme.test" not in client.get("/admin/tenants/invitation/?status=expired").content.decode()
    sent = len(mail.outbox)
    client.post(
        "/admin/tenants/invitation/",
        {"action": "resend", "_selected_action": [str(old.pk), str(other.pk)]},
    )
    old.refresh_from_db()
    assert old.status == "pending" and old.send_count == 2 and len(mail.outbox) == sent + 1  # globex's untouched
    client.post("/admin/tenants/invitation/", {"action": "revoke", "_selected_action": [str(pending.pk)]})
    pending.refresh_from_db()
    assert pending.status == "revoked"
    assert AuditEvent.objects.filter(action="invitation.revoked", org_id=acme.pk).exists()


def test_existing_email_cannot_be_invited(manager, acme, acme_marketer):
    with pytest.raises(ServiceError, match="already has a P360 account"):
        invitations.invitation_create(
            org=acme, email=acme_marketer.email, role="marketer", actor=manager, base_url="http://t/"
        )
