"""API permission: authenticated, and (under /o/<slug>/) allowed to see that organisation."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, permissions
from rest_framework.request import Request

from tenants.access import can_see_org


class CanUseCurrentOrg(permissions.BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        org = getattr(request._request, "org", None)
        if org is None:
            return True
        if getattr(request._request, "org_checked_for", None) == request.user.pk:
            return True  # the org middleware already applied the access rule to this user
        if not can_see_org(request.user, org):
            # Same answer as for an org that does not exist: never confirm it is there.
            raise exceptions.NotFound()
        return True
