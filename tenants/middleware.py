"""Organisation routing and the access check for every URL under /o/<slug>/.

Order of decisions, before any query runs in a tenant schema:
1. not under /o/ -> the public schema and the public URLconf;
2. anonymous -> login redirect (pages) or 401 (API), whether or not the slug exists, so the
   response never tells an outsider which organisations exist;
3. unknown or inactive slug, or an org the user may not see -> 404;
4. otherwise the connection switches to the org's schema and the org's URLconf is used.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from types import ModuleType

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import include, path, set_urlconf

from p360.core import context
from p360.core.api_errors import error_response, is_api_path
from tenants.access import visible_org
from tenants.auth import ROUTE_SLUG
from tenants.models import Organization

ORG_PREFIX = f"/{settings.TENANT_SUBFOLDER_PREFIX}/"


def public_tenant() -> Organization:
    """An unsaved stand-in for the public schema (no placeholder row is needed)."""
    return Organization(schema_name="public", slug="", name="P360")


_URLCONFS: dict[str, ModuleType] = {}


def org_urlconf(slug: str) -> ModuleType:
    """The org URLconf mounted under /o/<slug>/, built once per slug so Django's resolver cache stays warm."""
    if slug not in _URLCONFS:
        base = import_module(settings.ORG_URLCONF)
        module = ModuleType(f"{settings.ORG_URLCONF}_{slug}")
        module.urlpatterns = [path(f"{settings.TENANT_SUBFOLDER_PREFIX}/{slug}/", include(base.urlpatterns))]  # type: ignore[attr-defined]
        for handler in ("handler400", "handler403", "handler404", "handler500"):
            setattr(module, handler, getattr(base, handler))
        _URLCONFS[slug] = module
    return _URLCONFS[slug]


def slug_from_path(path: str) -> str | None:
    if not path.startswith(ORG_PREFIX):
        return None
    return path[len(ORG_PREFIX) :].split("/", 1)[0] or None


class OrgMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        connection.set_schema_to_public()  # type: ignore[attr-defined]
        try:
            response = self._route(request)
        finally:
            # Never let a pooled connection carry an org's search_path into the next request.
            connection.set_schema_to_public()  # type: ignore[attr-defined]
            set_urlconf(None)
        return response

    def _route(self, request: HttpRequest) -> HttpResponse:
        slug = slug_from_path(request.path)
        reset = ROUTE_SLUG.set(slug)  # a session's user is then read with this org's access (RoleBackend)
        try:
            authenticated = request.user.is_authenticated
        finally:
            ROUTE_SLUG.reset(reset)
        if authenticated:
            context.update(user=str(request.user.pk))
        if slug is None:
            request.tenant = public_tenant()  # type: ignore[attr-defined]
            request.urlconf = settings.PUBLIC_SCHEMA_URLCONF  # type: ignore[attr-defined]
            set_urlconf(request.urlconf)  # type: ignore[attr-defined]
            return self.get_response(request)

        if not request.user.is_authenticated:
            if is_api_path(request.path):
                return error_response(401, "Authentication credentials were not provided.", "not_authenticated")
            return redirect_to_login(request.get_full_path())

        # One query answers "exists, active and visible to this user"; every miss is the same 404. A token
        # request has it already, and so has a session's user read by RoleBackend: the same statement answered it.
        route = getattr(request, "_p360_route", None) or getattr(request.user, "_p360_route", None)
        if route is not None and route[:2] == (request.user.pk, slug):
            org = route[2]
        else:
            org = visible_org(request.user, slug)
        if org is None:
            raise Http404("No such organisation")

        org.domain_subfolder = slug  # type: ignore[attr-defined]
        org.domain_url = request.get_host()  # type: ignore[attr-defined]
        request.tenant = org  # type: ignore[attr-defined]
        request.org = org  # type: ignore[attr-defined]
        request.org_checked_for = request.user.pk  # type: ignore[attr-defined]  # read by the API permission
        context.update(org=org.slug)
        connection.set_tenant(org)  # type: ignore[attr-defined]
        urlconf = org_urlconf(slug)
        request.urlconf = urlconf  # type: ignore[assignment, attr-defined]
        set_urlconf(urlconf)  # type: ignore[arg-type]
        return self.get_response(request)
