"""Invitations: a campaign manager (for their orgs) or a super admin invites an email to an org.

The link is `signing.dumps({"i": id, "n": nonce})`: tampering breaks the signature; resending
rotates the nonce (older links stop working) and the expiry; accepting or revoking ends it. Accepting
creates the user with a verified email, in exactly that org, in one transaction that locks the row,
so two clicks on one link create one user.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from p360.core.audit.services import record
from tenants.access import orgs_manageable_by
from tenants.models import Invitation, Organization, Role, User
from tenants.services import ServiceError, user_create

SALT = "p360.invitation"
INVITABLE_ROLES = {Role.MARKETER, Role.CAMPAIGN_MANAGER}


class InvitationInvalid(Exception):
    """The link cannot be used; `message` says why, for the invitee."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invitation_key(invitation: Invitation) -> str:
    return signing.dumps({"i": invitation.pk, "n": invitation.nonce}, salt=SALT, compress=True)


def invitation_path(invitation: Invitation) -> str:
    return f"/accounts/invitation/{invitation_key(invitation)}/"


def _roles_for(actor: User) -> set[str]:
    if actor.role == Role.SUPER_ADMIN:
        return set(INVITABLE_ROLES)
    if actor.role == Role.CAMPAIGN_MANAGER:
        return {Role.MARKETER}
    return set()


def _snapshot(invitation: Invitation) -> dict[str, Any]:
    return {
        "email": invitation.email,
        "org": invitation.org.slug,
        "role": invitation.role,
        "expires_at": invitation.expires_at,
        "status": invitation.status,
    }


def _send(invitation: Invitation, *, base_url: str) -> None:
    context = {
        "invitation": invitation,
        "url": base_url.rstrip("/") + invitation_path(invitation),
        "days": settings.P360_INVITATION_DAYS,
        "inviter": invitation.invited_by.get_full_name() if invitation.invited_by else "P360",
    }
    send_mail(
        subject=f"[P360] You are invited to {invitation.org.name}",
        message=render_to_string("tenants/invitation_email.txt", context),
        from_email=None,
        recipient_list=[invitation.email],
    )


@transaction.atomic
def invitation_create(*, org: Organization, email: str, role: str, actor: User, base_url: str) -> Invitation:
    """Invite `email` to `org` as `role`, and send the link."""
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise ServiceError(f"invalid email address {email!r}") from exc
    if not orgs_manageable_by(actor).filter(pk=org.pk).exists():
        raise ServiceError("you may not invite people to this organisation")
    if role not in _roles_for(actor):
        raise ServiceError(f"you may not invite a {Role(role).label.lower() if role in Role.values else role!r}")
    if not org.is_active:
        raise ServiceError("this organisation is deactivated")
    if User.objects.filter(email__iexact=email).exists():
        raise ServiceError(f"{email} already has a P360 account; assign it under Org assignments instead")
    if Invitation.objects.pending().filter(org=org, email__iexact=email).exists():
        raise ServiceError(f"{email} already has a pending invitation to {org.slug}; resend it instead")
    invitation = Invitation.objects.create(
        org=org,
        email=email,
        role=role,
        invited_by=actor,
        nonce=secrets.token_urlsafe(16),
        expires_at=timezone.now() + timedelta(days=settings.P360_INVITATION_DAYS),
    )
    _send(invitation, base_url=base_url)
    record(action="invitation.created", actor=actor, org=org, entity=invitation, after=_snapshot(invitation))
    return invitation


def _manageable(invitation: Invitation, actor: User) -> None:
    if not orgs_manageable_by(actor).filter(pk=invitation.org_id).exists():
        raise ServiceError("you may not manage this invitation")


@transaction.atomic
def invitation_resend(*, invitation: Invitation, actor: User, base_url: str) -> Invitation:
    """Send a fresh link (the old one stops working) valid for another full period."""
    _manageable(invitation, actor)
    if invitation.accepted_at is not None or invitation.revoked_at is not None:
        raise ServiceError(f"the invitation for {invitation.email} is {invitation.status}; it cannot be resent")
    before = _snapshot(invitation)
    invitation.nonce = secrets.token_urlsafe(16)
    invitation.expires_at = timezone.now() + timedelta(days=settings.P360_INVITATION_DAYS)
    invitation.sent_at = timezone.now()
    invitation.send_count += 1
    invitation.save(update_fields=["nonce", "expires_at", "sent_at", "send_count"])
    _send(invitation, base_url=base_url)
    record(
        action="invitation.resent",
        actor=actor,
        org=invitation.org,
        entity=invitation,
        before=before,
        after=_snapshot(invitation),
    )
    return invitation


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor: User) -> Invitation:
    _manageable(invitation, actor)
    if invitation.accepted_at is not None:
        raise ServiceError(f"{invitation.email} already accepted; deactivate the user instead")
    if invitation.revoked_at is None:
        before = _snapshot(invitation)
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        record(
            action="invitation.revoked",
            actor=actor,
            org=invitation.org,
            entity=invitation,
            before=before,
            after=_snapshot(invitation),
        )
    return invitation


def invitation_from_key(key: str, *, for_update: bool = False) -> Invitation:
    """The usable invitation a link names, or `InvitationInvalid` saying why not."""
    try:
        data = signing.loads(key, salt=SALT)
        pk, nonce = int(data["i"]), str(data["n"])
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise InvitationInvalid("tampered", "This invitation link is not valid (it may have been altered).") from exc
    queryset = Invitation.objects.select_related("org", "invited_by")
    if for_update:
        queryset = queryset.select_for_update(of=("self",))
    invitation = queryset.filter(pk=pk).first()
    if invitation is None:
        raise InvitationInvalid("unknown", "This invitation no longer exists.")
    if not secrets.compare_digest(invitation.nonce, nonce):
        raise InvitationInvalid("superseded", "A newer invitation was sent for this address: use the latest email.")
    if invitation.accepted_at is not None:
        raise InvitationInvalid("used", "This invitation has already been used. Sign in instead.")
    if invitation.revoked_at is not None:
        raise InvitationInvalid("revoked", "This invitation was withdrawn. Ask your campaign manager for a new one.")
    if invitation.expires_at <= timezone.now():
        raise InvitationInvalid("expired", "This invitation has expired. Ask your campaign manager to resend it.")
    if not invitation.org.is_active:
        raise InvitationInvalid("org_inactive", "This organisation is not active.")
    return invitation


@transaction.atomic
def invitation_accept(*, key: str, password: str | None, full_name: str = "") -> User:
    """Create the invitee's account (single use: the row is locked and marked accepted)."""
    invitation = invitation_from_key(key, for_update=True)
    if User.objects.filter(email__iexact=invitation.email).exists():
        raise InvitationInvalid("exists", "An account with this email already exists. Sign in instead.")
    user = user_create(
        email=invitation.email,
        role=invitation.role,
        orgs=[invitation.org],
        password=password,
        full_name=full_name,
        actor=invitation.invited_by,
    )
    # Following the emailed link proves the address, whether or not a password was chosen.
    EmailAddress.objects.filter(user=user, email__iexact=user.email).update(verified=True)
    invitation.accepted_at = timezone.now()
    invitation.accepted_user = user
    invitation.save(update_fields=["accepted_at", "accepted_user"])
    record(
        action="invitation.accepted",
        actor=user,
        org=invitation.org,
        entity=invitation,
        after={**_snapshot(invitation), "method": "password" if password else "auth0"},
    )
    return user


def invitation_refused(key: str, exc: InvitationInvalid) -> None:
    """Audit a refused link (tampered, reused, expired...), without the key itself."""
    record(action="invitation.refused", after={"reason": exc.code})
