"""Global URLs (public schema): admin, accounts, API, health. Org URLs live under /o/<slug>/."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from p360 import views
from p360.api import views as api_views
from p360.core.admin_sites import global_admin
from p360.core.api_errors import json_or_html_handler
from p360.urls_tenant import api_patterns as org_api_patterns

api_v1 = [
    path("", api_views.ApiRoot.as_view(), name="api-root"),
    path("orgs/", api_views.OrgList.as_view(), name="api-orgs"),
    path("me/", api_views.Me.as_view(), name="api-me"),
]

# The OpenAPI document covers the global API and, with {slug} as a path parameter, every org's API.
schema_patterns = [
    path("api/v1/", include(api_v1)),
    path("o/<slug:slug>/api/v1/", include(org_api_patterns)),  # type: ignore[arg-type]
]

urlpatterns = [
    path("", views.home, name="home"),
    path("orgs/", views.org_picker, name="org-picker"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", global_admin.urls),
    # identity (issue 3): invitations and profile pages, then allauth; staff SSO under /oidc/
    path("", include("tenants.urls")),
    path("accounts/", include("allauth.urls")),
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("api/v1/", include(api_v1)),
    path(
        "api/schema/",
        SpectacularAPIView.as_view(patterns=schema_patterns, permission_classes=[AllowAny]),
        name="api-schema",
    ),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="api-schema", permission_classes=[AllowAny]),
        name="api-docs",
    ),
]

handler400 = json_or_html_handler(400, "Bad request.")
handler403 = json_or_html_handler(403, "You do not have permission to perform this action.")
handler404 = json_or_html_handler(404, "Not found.")
handler500 = json_or_html_handler(500, "Internal server error.")
