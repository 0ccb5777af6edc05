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


def _rule_answers(users, token_hashes):
    """For every user and slug: (the ORM rule, the org middleware's statement, the token lookup's join)."""
    from tenants.access import token_and_org, visible_org
    from tenants.models import User

    answers = []
    for user, token_hash in zip(users, token_hashes, strict=True):
        user = User.objects.get(pk=user.pk)  # the state in the database, as a request reads it
        for slug in ("acme", "globex", "nope"):
            rule = orgs_visible_to(user).filter(domains__domain=slug).first()
            found = token_and_org(token_hash, slug)
            assert found is not None
            token, via_token = found
            assert token.user.pk == user.pk
            one_statement = visible_org(user, slug)
            answers.append((user.email, slug, rule and rule.pk, one_statement and one_statement.pk))
            assert (rule and rule.pk) == (one_statement and one_statement.pk) == (via_token and via_token.pk), (
                user.email,
                slug,
            )
    return answers


def test_the_one_statement_lookups_apply_the_same_rule(super_admin, manager, acme_marketer, globex_marketer, acme):
    """tenants.access.visible_org and token_and_org are orgs_visible_to in SQL: the same answer for every role,
    org and slug, also after a deactivation, a removed assignment and a role change."""
    from tenants.models import Membership, Organization, User, hash_token
    from tenants.services import api_token_create

    users = [super_admin, manager, acme_marketer, globex_marketer]
    hashes = [hash_token(api_token_create(user=u, name="rule")[1]) for u in users]
    before = _rule_answers(users, hashes)
    assert ("marketer@acme.test", "acme", acme.pk, acme.pk) in before
    assert ("marketer@acme.test", "globex", None, None) in before

    Organization.objects.filter(pk=acme.pk).update(is_active=False)
    assert all(org != acme.pk for *_, org in _rule_answers(users, hashes))
    Organization.objects.filter(pk=acme.pk).update(is_active=True)

    Membership.objects.filter(user=manager, org=acme).delete()
    User.objects.filter(pk=globex_marketer.pk).update(role=Role.SUPER_ADMIN)
    after = _rule_answers(users, hashes)
    assert ("manager@test.local", "acme", None, None) in after
    assert ("marketer@globex.test", "acme", acme.pk, acme.pk) in after

    User.objects.filter(pk=super_admin.pk).update(is_active=False)
    assert [org for email, _, _, org in _rule_answers(users, hashes) if email == super_admin.email] == [None] * 3
