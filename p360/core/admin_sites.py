"""The two admin sites: global (/admin/, public schema) and per-organisation (/o/<slug>/admin/).

Both are named "admin" (each lives in its own URLconf), so Unfold's and Django's templates that
reverse "admin:..." work unchanged in either.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from unfold.sites import UnfoldAdminSite


# Who may use an organisation's admin is the tenants access rule (`tenants.access.can_use_org_admin`). The core sits
# below tenants, so tenants hands the rule over from its AppConfig.ready(); until then nobody may (fail closed).
def _nobody(user: Any, org: Any) -> bool:
    return False


_org_admin_rule: list[Callable[[Any, Any], bool]] = [_nobody]


def set_org_admin_rule(rule: Callable[[Any, Any], bool]) -> None:
    _org_admin_rule[0] = rule


class _LoginThroughAccounts:
    """Both admins log in through /accounts/login/ (allauth: rate limits, MFA, SSO buttons).

    A signed-in user without admin rights gets the branded 403 page: sending them to the login
    page would bounce straight back here (allauth redirects a signed-in user to ?next=), a loop.
    """

    has_permission: Callable[[HttpRequest], bool]

    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        target = request.GET.get("next") or request.path.replace("login/", "")
        if request.user.is_authenticated:
            if self.has_permission(request):
                return HttpResponseRedirect(reverse("admin:index", current_app=self.name))  # type: ignore[attr-defined]
            raise PermissionDenied("No access to this admin.")
        return redirect_to_login(target)

    def admin_view(self, view: Callable[..., HttpResponse], cacheable: bool = False) -> Callable[..., HttpResponse]:
        inner = super().admin_view(view, cacheable)  # type: ignore[misc]

        @wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not self.has_permission(request) and not request.path.endswith("/logout/"):
                if not request.user.is_authenticated:  # straight to the one login page, one redirect
                    return redirect_to_login(request.get_full_path())
                raise PermissionDenied("No access to this admin.")
            return inner(request, *args, **kwargs)

        return guarded


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
