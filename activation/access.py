"""Who may change an org's activation (destinations, delivery settings, deliveries): the org admin's rule, used
by the API and the marketer pages alike. Destinations hold credentials and send the org's people out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenants.access import can_use_org_admin

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser

    from tenants.models import Organization, User


def can_manage_activation(user: User | AnonymousUser | None, org: Organization) -> bool:
    """Staff of the org (super admins, its campaign managers) whose role grants activation's change permission."""
    return bool(can_use_org_admin(user, org) and user is not None and user.has_perm("activation.change_destination"))
