"""Staff single sign-on (Entra ID): check an ID token's claims and bring the P360 user in line.

Identity is `tid` + `oid` (never the email); the role comes from app roles (and optionally group
ids) through `ENTRA_ROLE_MAP` / `ENTRA_GROUP_MAP`, re-synced at every sign-in and session refresh.
A user whose token no longer maps to a staff role is deactivated (and refused), so neither the
session nor their API tokens outlive the role.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.utils import timezone

from p360.core.audit.services import record
from tenants import services
from tenants.models import ExternalIdentity, IdentityProvider, Role, User

log = logging.getLogger(__name__)

# Highest first: a user holding several mapped roles gets the strongest one.
ROLE_ORDER = [Role.SUPER_ADMIN, Role.CAMPAIGN_MANAGER]


class LoginRefused(Exception):
    """A sign-in (or session refresh) was refused; `code` is for the audit row, `message` for the user."""

    def __init__(self, code: str, message: str, *, email: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.email = email


def role_from_claims(claims: dict[str, Any]) -> str | None:
    """The P360 role the token's app roles (and group ids) map to, or None."""
    mapped: set[str] = set()
    for value in claims.get("roles") or []:
        if value in settings.ENTRA_ROLE_MAP:
            mapped.add(settings.ENTRA_ROLE_MAP[value])
    for group in claims.get("groups") or []:
        if group in settings.ENTRA_GROUP_MAP:
            mapped.add(settings.ENTRA_GROUP_MAP[group])
    if settings.ENTRA_GROUP_MAP and ("_claim_names" in claims or claims.get("hasgroups")):
        # Over 200 groups: Entra sends a Graph link instead of ids. App roles still arrive in `roles`.
        log.warning("Entra groups overage for oid=%s: only app roles are mapped", claims.get("oid"))
    for role in ROLE_ORDER:
        if role.value in mapped:
            return role.value
    return None


def check_claims(claims: dict[str, Any], *, nonce: str | None) -> None:
    """What PyJWT does not check for us: the tenant, the object id, and the nonce of this sign-in."""
    email = str(claims.get("email") or claims.get("preferred_username") or "")
    if claims.get("tid") != settings.ENTRA_TENANT_ID:
        raise LoginRefused("wrong_tenant", "The token was issued for another Microsoft tenant.", email=email)
    if not claims.get("oid"):
        raise LoginRefused("missing_oid", "The token carries no object id (oid).", email=email)
    if nonce is not None and claims.get("nonce") != nonce:
        raise LoginRefused(
            "nonce_mismatch", "The token does not belong to this sign-in (nonce mismatch or replay).", email=email
        )


def _identity(claims: dict[str, Any]) -> ExternalIdentity | None:
    return (
        ExternalIdentity.objects.select_related("user")
        .filter(provider=IdentityProvider.ENTRA, tenant=claims["tid"], subject=claims["oid"])
        .first()
    )


def find_user(claims: dict[str, Any]) -> User | None:
    identity = _identity(claims)
    return identity.user if identity else None


def sync_staff_user(claims: dict[str, Any], *, create: bool) -> User:
    """The user for these (verified) claims, created or updated; refuses when no staff role maps.

    Not one transaction on purpose: a deactivation for a lost role must stay written when the
    sign-in is then refused (each service call is its own transaction).
    """
    email = str(claims.get("email") or claims.get("preferred_username") or "").strip().lower()
    role = role_from_claims(claims)
    identity = _identity(claims)
    snapshot = {"roles": sorted(claims.get("roles") or []), "groups": sorted(claims.get("groups") or [])}

    if identity is None:
        if role is None:
            raise LoginRefused("no_role", "Your Microsoft account has no P360 role assigned.", email=email)
        if not create:
            raise LoginRefused("unknown_identity", "No P360 account is linked to this Microsoft identity.", email=email)
        if not email:
            raise LoginRefused("missing_email", "The token carries no email or user name.")
        if User.objects.filter(email__iexact=email).exists():
            # Never link by email: an Entra user could otherwise take over a local account.
            raise LoginRefused(
                "email_taken",
                f"A P360 account for {email} exists but is not linked to this Microsoft identity; "
                "ask a super admin to link it.",
                email=email,
            )
        user = services.user_create(email=email, role=role, full_name=str(claims.get("name") or ""), actor=None)
        identity = ExternalIdentity.objects.create(
            user=user, provider=IdentityProvider.ENTRA, tenant=claims["tid"], subject=claims["oid"]
        )
        record(
            action="identity.linked",
            entity=user,
            after={"provider": "entra", "tid": claims["tid"], "oid": claims["oid"], "email": email},
        )

    user = identity.user
    if role is None:
        if user.is_active:
            services.user_set_active(user=user, active=False, actor=None)
            identity.deactivated_by_sync = True
        identity.last_claims = snapshot
        identity.save(update_fields=["deactivated_by_sync", "last_claims"])
        raise LoginRefused("no_role", "Your Microsoft account no longer has a P360 role.", email=user.email)
    if not user.is_active:
        if not identity.deactivated_by_sync:
            raise LoginRefused("deactivated", "Your P360 account is deactivated.", email=user.email)
        services.user_set_active(user=user, active=True, actor=None)
        identity.deactivated_by_sync = False
    if user.role != role:
        services.user_set_role(user=user, role=role, actor=None, orgs=[] if role == Role.SUPER_ADMIN else None)
    name = str(claims.get("name") or "")
    if name and name != user.full_name:
        user.full_name = name
        user.save(update_fields=["full_name"])
    identity.last_claims = snapshot
    identity.last_login_at = timezone.now()
    identity.save(update_fields=["deactivated_by_sync", "last_claims", "last_login_at"])
    return user
