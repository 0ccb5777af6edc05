"""The one access rule: which organisations a user may see, and what they may do there.

Middleware (pages, org admin, API), the admin querysets and autocompletes, the API and the
commands all ask these functions; nothing else decides who sees which org.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Model, QuerySet

from p360.core.db import qualified_cursor
from tenants.models import STAFF_ROLES, Organization, Role

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser

    from tenants.models import ApiToken, User

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


# --- The hot path: who is asking, and the org of the URL, in one statement --------------------------------
# A small API request used to spend one round trip on the token (with its user) and one on the org of the
# URL. Both are read here in one statement, fresh from the database on every request: a revoked token, a
# deactivated user or org and a removed assignment take effect at once (no cache to expire or invalidate).


def _columns(model: type[Model], alias: str) -> tuple[list[str], str]:
    """The model's concrete field attnames and their SELECT list under `alias` (every column, so the
    instances built from the row are the ones the ORM would build)."""
    fields = model._meta.concrete_fields
    return [f.attname for f in fields], ", ".join(f'{alias}."{f.column}"' for f in fields)


def _table(model: type[Model]) -> str:
    """The model's public-schema table, schema-qualified: these statements run under any org's search_path."""
    from django_tenants.utils import get_public_schema_name

    return f'"{get_public_schema_name()}"."{model._meta.db_table}"'


def _visible_org_join(user_alias: str) -> str:
    """orgs_visible_to(user).filter(domains__domain=<slug>) as a LATERAL join on the user row `user_alias`
    (one `%s`: the slug). The same rule as orgs_visible_to: an active user; an active customer org; every org
    for a super admin, assigned ones for the others. tests/tenants/test_access.py checks them against each other."""
    from tenants.models import Domain, Membership

    _, org_select = _columns(Organization, "o")
    return (
        f"LEFT JOIN LATERAL (SELECT {org_select} FROM {_table(Organization)} o "
        f"JOIN {_table(Domain)} d ON d.tenant_id = o.id "
        f"WHERE d.domain = %s AND o.is_active AND o.schema_name <> 'public' AND {user_alias}.is_active "
        f"AND ({user_alias}.role = '{Role.SUPER_ADMIN.value}' OR EXISTS (SELECT 1 FROM "
        f"{_table(Membership)} m WHERE m.org_id = o.id AND m.user_id = {user_alias}.id)) "
        "ORDER BY o.id LIMIT 1) o ON true"
    )


def _build[M: Model](model: type[M], names: list[str], values: tuple[object, ...]) -> M:
    return model.from_db("default", names, values)


def token_and_org(token_hash: str, slug: str | None) -> tuple[ApiToken, Organization | None] | None:
    """The token with that hash (its `user` loaded) and, when `slug` is given, the org with that slug if its
    user may see it (None otherwise); None when no token has that hash. Revocation and the user's state are
    the caller's to judge, from the rows returned."""
    from tenants.models import ApiToken, User

    token_names, token_select = _columns(ApiToken, "t")
    user_names, user_select = _columns(User, "u")
    org_names, org_select = _columns(Organization, "o")
    with_org = slug is not None
    sql = (
        f"SELECT {token_select}, {user_select}{', ' + org_select if with_org else ''} "
        f"FROM {_table(ApiToken)} t JOIN {_table(User)} u ON u.id = t.user_id "
        f"{_visible_org_join('u') if with_org else ''} WHERE t.token_hash = %s"
    )
    with qualified_cursor() as cursor:
        cursor.execute(sql, [slug, token_hash] if with_org else [token_hash])
        row = cursor.fetchone()
    if row is None:
        return None
    n_token, n_user = len(token_names), len(user_names)
    token = _build(ApiToken, token_names, row[:n_token])
    token.user = _build(User, user_names, row[n_token : n_token + n_user])
    org_values = row[n_token + n_user :]
    has_org = with_org and org_values[org_names.index(Organization._meta.pk.attname)] is not None
    org = _build(Organization, org_names, org_values) if has_org else None
    return token, org


def visible_org(user: User | AnonymousUser | None, slug: str) -> Organization | None:
    """orgs_visible_to(user).filter(domains__domain=slug).first(), as one plain statement (the org middleware
    asks it on every request, so it skips the ORM's query building); the user's state is read fresh."""
    from tenants.models import User as UserModel

    if user is None or not user.is_authenticated or user.pk is None:
        return None
    org_names, org_select = _columns(Organization, "o")
    sql = f"SELECT {org_select} FROM {_table(UserModel)} u {_visible_org_join('u')} WHERE u.id = %s"
    with qualified_cursor() as cursor:
        cursor.execute(sql, [slug, user.pk])
        row = cursor.fetchone()
    if row is None or row[org_names.index(Organization._meta.pk.attname)] is None:
        return None
    return _build(Organization, org_names, row)


def user_and_org(user_id: object, slug: str) -> tuple[User, Organization | None] | None:
    """The user with that id and the org with that slug if the user may see it (None otherwise), in one
    statement; None when there is no such user. The session path's user lookup (tenants.auth.RoleBackend)."""
    from tenants.models import User as UserModel

    user_names, user_select = _columns(UserModel, "u")
    org_names, org_select = _columns(Organization, "o")
    sql = (
        f"SELECT {user_select}, {org_select} FROM {_table(UserModel)} u {_visible_org_join('u')} "
        f"WHERE u.{UserModel._meta.pk.column} = %s"
    )
    with qualified_cursor() as cursor:
        cursor.execute(sql, [slug, UserModel._meta.pk.to_python(user_id)])
        row = cursor.fetchone()
    if row is None:
        return None
    user = _build(UserModel, user_names, row[: len(user_names)])
    org_values = row[len(user_names) :]
    has_org = org_values[org_names.index(Organization._meta.pk.attname)] is not None
    return user, (_build(Organization, org_names, org_values) if has_org else None)
