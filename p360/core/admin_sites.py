"""The two admin sites: global (/admin/, public schema) and per-organisation (/o/<slug>/admin/).

Both are named "admin" (each lives in its own URLconf), so Unfold's and Django's templates that
reverse "admin:..." work unchanged in either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from unfold.sites import UnfoldAdminSite


# Who may use an organisation's admin is the tenants access rule (`tenants.access.can_use_org_admin`). The core sits
# below tenants, so tenants hands the rule over from its AppConfig.ready(); until then nobody may (fail closed).
def _nobody(user: Any, org: Any) -> bool:
    return False


_org_admin_rule: list[Callable[[Any, Any], bool]] = [_nobody]


def set_org_admin_rule(rule: Callable[[Any, Any], bool]) -> None:
    _org_admin_rule[0] = rule


class _LoginThroughAccounts:
    """Both admins log in through /accounts/login/ (allauth: rate limits, MFA, SSO buttons)."""

    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        return redirect_to_login(request.GET.get("next") or request.path.replace("login/", ""))


class GlobalAdminSite(_LoginThroughAccounts, UnfoldAdminSite):
    settings_name = "UNFOLD"
    site_title = "P360 admin"
    site_header = "P360"
    index_title = "Operations dashboard"
    index_template = "admin/p360_dashboard.html"

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_active and user.is_staff)


class OrgAdminSite(_LoginThroughAccounts, UnfoldAdminSite):
    settings_name = "UNFOLD_ORG"
    site_title = "P360 org admin"
    index_title = "Organisation dashboard"
    index_template = "admin/p360_dashboard.html"

    def has_permission(self, request: HttpRequest) -> bool:
        org = getattr(request, "org", None)
        return org is not None and _org_admin_rule[0](request.user, org)


global_admin = GlobalAdminSite(name="admin")
org_admin = OrgAdminSite(name="admin")
