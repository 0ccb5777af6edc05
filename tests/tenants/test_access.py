"""The access rule: which orgs each role sees."""

from __future__ import annotations

from tenants.access import can_see_org, can_use_org_admin, orgs_visible_to, role_has_perm, users_manageable_by
from tenants.models import Role


def test_orgs_visible_to_each_role(super_admin, manager, acme_marketer, globex_marketer):
    def slugs(user):
        return sorted(orgs_visible_to(user).values_list("slug", flat=True))

    assert slugs(super_admin) == ["acme", "globex"]
    assert slugs(manager) == ["acme"]
    assert slugs(acme_marketer) == ["acme"]
    assert slugs(globex_marketer) == ["globex"]


def test_deactivated_user_sees_nothing(acme_marketer, acme):
    acme_marketer.is_active = False
    assert list(orgs_visible_to(acme_marketer)) == []
    assert not can_see_org(acme_marketer, acme)


def test_only_staff_use_the_org_admin(manager, acme_marketer, acme, globex):
    assert can_use_org_admin(manager, acme)
    assert not can_use_org_admin(manager, globex)
    assert not can_use_org_admin(acme_marketer, acme)


def test_role_permissions():
    assert role_has_perm(Role.SUPER_ADMIN, "django_q.delete_schedule")
    assert role_has_perm(Role.CAMPAIGN_MANAGER, "audiences.change_audience")
    assert not role_has_perm(Role.CAMPAIGN_MANAGER, "django_q.view_schedule")
    assert not role_has_perm(Role.CAMPAIGN_MANAGER, "tenants.add_organization")
    assert not role_has_perm(Role.MARKETER, "audiences.view_audience")


def test_campaign_manager_manages_users_of_their_orgs_only(manager, super_admin):
    emails = sorted(users_manageable_by(manager).values_list("email", flat=True))
    assert emails == ["manager@test.local", "marketer@acme.test"]
    assert "admin@test.local" not in emails
    assert users_manageable_by(super_admin).count() >= 4
