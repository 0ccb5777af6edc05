"""The one access rule: which organisations a user may see, and what they may do there.

Middleware (pages, org admin, API), the admin querysets and autocompletes, the API and the
commands all ask these functions; nothing else decides who sees which org.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Model, QuerySet

from tenants.models import STAFF_ROLES, Organization, Role

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser

    from tenants.models import User

# What each role may do, as Django permission patterns "<app_label>.<action>_<model>" with "*"
# wildcards. Super admins may do everything; marketers never use the admin.
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    Role.CAMPAIGN_MANAGER: (
        # their orgs' data, in the org admin
        "audiences.*",
        "campaigns.*",
        "ingestion.*",
        "bombora.*",  # Bombora intent data (its own app since issue 16; was under ingestion.*)
        "reporting.*",
        "uploads.*",  # issue 4: the org's uploads (read-only in the org admin)
        "segments.*",  # issue 13: event segments, trigger campaigns and sends
        "activation.*",  # issue 12: destinations, deliveries, UID2 identities, TTD segments, ICP seeds
        "admin.*",
        # the global admin: see their orgs, manage those orgs' users and assignments
        "tenants.view_organization",
        "tenants.view_user",
        "tenants.add_user",
        "tenants.change_user",
        "tenants.view_membership",
        "tenants.add_membership",
        "tenants.delete_membership",
        "tenants.view_apitoken",
        "tenants.change_apitoken",
        "tenants.view_invitation",
        "tenants.add_invitation",
        "tenants.change_invitation",
        "tenants.view_externalidentity",
        "jobs.view_job",
        "audit.view_auditevent",
    ),
    Role.MARKETER: (),
}


def _matches(pattern: str, perm: str) -> bool:
    if pattern.endswith("*"):
        return perm.startswith(pattern[:-1])
    return pattern == perm


def role_has_perm(role: str, perm: str) -> bool:
    if role == Role.SUPER_ADMIN:
        return True
    return any(_matches(pattern, perm) for pattern in ROLE_PERMISSIONS.get(role, ()))


def role_has_module(role: str, app_label: str) -> bool:
    if role == Role.SUPER_ADMIN:
        return True
    return any(pattern.startswith(f"{app_label}.") for pattern in ROLE_PERMISSIONS.get(role, ()))


def orgs_visible_to(user: User | AnonymousUser | None) -> QuerySet[Organization]:
    """Active organisations the user may open: all for super admins, assigned ones for others."""
    if user is None or not user.is_authenticated or not user.is_active:
        return Organization.objects.none()
    orgs = Organization.objects.active()
    if user.role == Role.SUPER_ADMIN:
        return orgs
    return orgs.filter(memberships__user=user)


def orgs_manageable_by(user: User | AnonymousUser | None) -> QuerySet[Organization]:
    """Organisations whose settings, users and history the user may manage (active or not)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return Organization.objects.none()
    if user.role == Role.SUPER_ADMIN:
        return Organization.objects.customers()
    if user.role == Role.CAMPAIGN_MANAGER:
        return Organization.objects.customers().filter(memberships__user=user)
    return Organization.objects.none()


def can_see_org(user: User | AnonymousUser | None, org: Organization) -> bool:
    if not org.is_active or org.schema_name == "public":
        return False
    return orgs_visible_to(user).filter(pk=org.pk).exists()


def can_use_org_admin(user: User | AnonymousUser | None, org: Organization) -> bool:
    return bool(user and user.is_authenticated and user.role in STAFF_ROLES and can_see_org(user, org))


def restrict_by_org[M: Model](
    queryset: QuerySet[M], user: User | AnonymousUser | None, org_field: str = "org"
) -> QuerySet[M]:
    """Limit a public-schema queryset with an org foreign key to the orgs the user may manage."""
    if user is not None and user.is_authenticated and user.role == Role.SUPER_ADMIN:
        return queryset
    return queryset.filter(**{f"{org_field}__in": orgs_manageable_by(user)})


def users_manageable_by(user: User | AnonymousUser | None) -> QuerySet[User]:
    """Users the acting user may see and edit: everyone for super admins; for campaign managers,
    the users of their orgs, never other staff outside them nor super admins."""
    from tenants.models import User as UserModel

    if user is None or not user.is_authenticated or not user.is_active:
        return UserModel.objects.none()
    if user.role == Role.SUPER_ADMIN:
        return UserModel.objects.all()
    if user.role == Role.CAMPAIGN_MANAGER:
        return (
            UserModel.objects.filter(memberships__org__in=orgs_manageable_by(user))
            .exclude(role=Role.SUPER_ADMIN)
            .distinct()
        )
    return UserModel.objects.filter(pk=user.pk)


def landing_url_for(user: User) -> str:
    """Where a user lands after login: a marketer in their org, staff on the org picker."""
    if user.is_authenticated and user.role == Role.MARKETER:
        org = orgs_visible_to(user).first()
        if org is not None:
            return f"/o/{org.slug}/"
    return "/orgs/"
