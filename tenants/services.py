"""Writes for organisations, users, assignments and API tokens. Admin, pages, API and commands call these."""

from __future__ import annotations

import re
import secrets
from typing import Any

from allauth.account.models import EmailAddress
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from p360.core.audit.services import record
from p360.core.errors import ServiceError  # re-exported: callers import tenants.services.ServiceError
from tenants.models import (
    RESERVED_SLUGS,
    SLUG_PATTERN,
    ApiToken,
    Domain,
    Membership,
    Organization,
    Role,
    User,
    hash_token,
    schema_name_for,
)


def _org_snapshot(org: Organization) -> dict[str, Any]:
    return {
        "name": org.name,
        "slug": org.slug,
        "is_active": org.is_active,
        "ttd_advertiser_id": org.ttd_advertiser_id,
        "salesforce_account_id": org.salesforce_account_id,
        "require_mfa": org.require_mfa,
    }


def validate_slug(slug: str) -> str:
    if not re.fullmatch(SLUG_PATTERN, slug or ""):
        raise ServiceError(
            f"invalid slug {slug!r}: use 2-40 characters a-z, 0-9 and '-', not starting or ending with '-'"
        )
    if slug in RESERVED_SLUGS:
        raise ServiceError(f"slug {slug!r} is reserved")
    return slug


@transaction.atomic
def org_create(
    *,
    slug: str,
    name: str,
    actor: User | None = None,
    ttd_advertiser_id: str = "",
    salesforce_account_id: str = "",
) -> Organization:
    """Create an organisation, its schema (migrated) and its routing row, all or nothing."""
    validate_slug(slug)
    name = (name or "").strip()
    if not name:
        raise ServiceError("an organisation needs a name")
    if Organization.objects.filter(slug=slug).exists():
        raise ServiceError(f"an organisation with slug {slug!r} already exists")
    ttd_advertiser_id = (ttd_advertiser_id or "").strip()
    if ttd_advertiser_id and Organization.objects.filter(ttd_advertiser_id=ttd_advertiser_id).exists():
        raise ServiceError(f"TTD advertiser id {ttd_advertiser_id!r} already belongs to another organisation")
    org = Organization(
        slug=slug,
        name=name,
        schema_name=schema_name_for(slug),
        ttd_advertiser_id=ttd_advertiser_id,
        salesforce_account_id=(salesforce_account_id or "").strip(),
    )
    org.save(verbosity=0)  # creates and migrates the schema inside this transaction (PostgreSQL DDL is transactional)
    Domain.objects.create(domain=slug, tenant=org, is_primary=True)
    record(action="org.created", actor=actor, org=org, entity=org, after=_org_snapshot(org))
    return org


@transaction.atomic
def org_update(*, org: Organization, actor: User | None, **changes: Any) -> Organization:
    """Change an organisation's editable fields (not its slug: URLs and schema depend on it)."""
    allowed = {"name", "ttd_advertiser_id", "salesforce_account_id", "require_mfa", "is_active"}
    unknown = set(changes) - allowed
    if unknown:
        raise ServiceError(f"cannot change {', '.join(sorted(unknown))}")
    before = _org_snapshot(org)
    new_ttd = changes.get("ttd_advertiser_id")
    if new_ttd and Organization.objects.exclude(pk=org.pk).filter(ttd_advertiser_id=new_ttd).exists():
        raise ServiceError(f"TTD advertiser id {new_ttd!r} already belongs to another organisation")
    for key, value in changes.items():
        setattr(org, key, value)
    org.save()
    after = _org_snapshot(org)
    if before != after:
        action = "org.updated"
        if before["is_active"] != after["is_active"]:
            action = "org.activated" if after["is_active"] else "org.deactivated"
        record(action=action, actor=actor, org=org, entity=org, before=before, after=after)
    return org


def org_set_active(*, org: Organization, active: bool, actor: User | None) -> Organization:
    """Deactivate (every URL under the org 404s, data kept) or reactivate an organisation."""
    return org_update(org=org, actor=actor, is_active=active)


def _user_snapshot(user: User) -> dict[str, Any]:
    return {
        "email": user.email,
        "role": user.role,
        "is_active": user.is_active,
        "orgs": sorted(user.memberships.values_list("org__slug", flat=True)) if user.pk else [],
    }


def _check_role(role: str) -> str:
    if role not in Role.values:
        raise ServiceError(f"unknown role {role!r}: choose one of {', '.join(Role.values)}")
    return role


def _check_orgs_for_role(role: str, orgs: list[Organization]) -> None:
    if role == Role.MARKETER and len(orgs) != 1:
        raise ServiceError("a marketer belongs to exactly one organisation")
    if role == Role.SUPER_ADMIN and orgs:
        raise ServiceError("a super admin sees every organisation; do not assign orgs")


@transaction.atomic
def user_create(
    *,
    email: str,
    role: str,
    orgs: list[Organization] | None = None,
    password: str | None = None,
    full_name: str = "",
    actor: User | None = None,
) -> User:
    """Create a user with a role and its org assignments."""
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise ServiceError(f"invalid email address {email!r}") from exc
    _check_role(role)
    orgs = list(orgs or [])
    _check_orgs_for_role(role, orgs)
    if User.objects.filter(email__iexact=email).exists():
        raise ServiceError(f"a user with email {email!r} already exists")
    user = User.objects.create_user(email=email, password=password, role=role, full_name=full_name)
    # allauth requires a verified address to sign in: one given a password by staff is vouched for;
    # otherwise it is verified when its owner accepts an invitation or follows a verification link.
    EmailAddress.objects.create(user=user, email=email, primary=True, verified=bool(password))
    for org in orgs:
        Membership.objects.create(user=user, org=org)
    record(action="user.created", actor=actor, entity=user, after=_user_snapshot(user))
    for org in orgs:
        record(action="user.org_assigned", actor=actor, org=org, entity=user, after={"org": org.slug})
    return user


@transaction.atomic
def user_set_role(*, user: User, role: str, actor: User | None, orgs: list[Organization] | None = None) -> User:
    """Change a user's role (and, when given, replace their org assignments to fit it)."""
    _check_role(role)
    before = _user_snapshot(user)
    if orgs is not None:
        _check_orgs_for_role(role, orgs)
        Membership.objects.filter(user=user).exclude(org__in=orgs).delete()
        for org in orgs:
            Membership.objects.get_or_create(user=user, org=org)
    else:
        _check_orgs_for_role(role, list(Organization.objects.filter(memberships__user=user)))
    user.role = role
    user.sync_flags_from_role()
    user.save(update_fields=["role", "is_staff", "is_superuser"])
    record(action="user.role_changed", actor=actor, entity=user, before=before, after=_user_snapshot(user))
    return user


@transaction.atomic
def user_set_active(*, user: User, active: bool, actor: User | None) -> User:
    if actor is not None and actor.pk == user.pk and not active:
        raise ServiceError("you cannot deactivate yourself")
    before = _user_snapshot(user)
    user.is_active = active
    user.save(update_fields=["is_active"])
    record(
        action="user.activated" if active else "user.deactivated",
        actor=actor,
        entity=user,
        before=before,
        after=_user_snapshot(user),
    )
    return user


@transaction.atomic
def user_set_name(*, user: User, full_name: str, actor: User | None) -> User:
    """A user's display name (their profile page, or staff in the admin); audited when it changes."""
    if full_name == user.full_name:
        return user
    before = {"full_name": user.full_name}
    user.full_name = full_name
    user.save(update_fields=["full_name"])
    record(action="user.name_changed", actor=actor, entity=user, before=before, after={"full_name": full_name})
    return user


@transaction.atomic
def user_set_password(*, user: User, password: str, actor: User | None) -> User:
    """Staff set a user's password; they vouch for the address they set it for (allauth needs it verified)."""
    user.set_password(password)
    user.save(update_fields=["password"])
    EmailAddress.objects.update_or_create(
        user=user, email__iexact=user.email, defaults={"email": user.email, "verified": True, "primary": True}
    )
    record(action="user.password_set", actor=actor, entity=user)
    return user


@transaction.atomic
def membership_add(*, user: User, org: Organization, actor: User | None) -> Membership:
    """Assign a user to an org (campaign managers: any number; marketers: their one org)."""
    if user.role == Role.SUPER_ADMIN:
        raise ServiceError("a super admin sees every organisation; do not assign orgs")
    existing = list(Organization.objects.filter(memberships__user=user))
    if org in existing:
        raise ServiceError(f"{user.email} is already assigned to {org.slug}")
    if user.role == Role.MARKETER and existing:
        raise ServiceError("a marketer belongs to exactly one organisation")
    membership = Membership.objects.create(user=user, org=org)
    record(action="user.org_assigned", actor=actor, org=org, entity=user, after={"org": org.slug})
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: User | None) -> None:
    user, org = membership.user, membership.org
    membership.delete()
    record(action="user.org_unassigned", actor=actor, org=org, entity=user, before={"org": org.slug})


TOKEN_PREFIX = "p360_"


@transaction.atomic
def api_token_create(*, user: User, name: str, actor: User | None = None) -> tuple[ApiToken, str]:
    """Create a token; returns it and its raw value, which is never stored and shown only now."""
    name = (name or "").strip() or "API token"
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name[:100], prefix=raw[:12], token_hash=hash_token(raw))
    record(action="token.created", actor=actor or user, entity=token, after={"user": user.email, "name": token.name})
    return token, raw


@transaction.atomic
def api_token_revoke(*, token: ApiToken, actor: User | None) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        record(action="token.revoked", actor=actor, entity=token, after={"user": token.user.email, "name": token.name})
    return token
