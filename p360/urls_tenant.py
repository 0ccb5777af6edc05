"""URLs of one organisation, mounted under /o/<slug>/ by the org middleware."""

from django.urls import include, path

from p360 import org_views
from p360.api.org_views import OrgApiRoot
from p360.core.admin_sites import org_admin
from p360.core.api_errors import json_or_html_handler
from p360.core.uploads import urls as uploads_urls
from reporting.attribution.api import Attribution as AttributionApi

api_patterns = [
    path("", OrgApiRoot.as_view(), name="org-api-root"),
    path("", include("audiences.api.urls")),
    path("", include("campaigns.api.urls")),
    path("", include(uploads_urls.api_urlpatterns)),  # issue 4: tus uploads
    # --- attribution (issue 7, item 4) ---
    path("attribution", AttributionApi.as_view(), name="attribution"),
    path("", include("reporting.api.urls")),  # issue 7: summaries
    path("", include("activation.api.urls")),  # issue 12: destinations, deliveries, audience activation
    path("", include("segments.api.urls")),  # issue 13: event segments
]

urlpatterns = [
    path("", org_views.org_home, name="org-home"),
    path("audiences/", include("audiences.urls")),
    path("admin/", org_admin.urls),
    path("api/v1/", include(api_patterns)),  # type: ignore[arg-type]
    path("", include(uploads_urls.page_urlpatterns)),  # issue 4: /o/<slug>/uploads/
    # --- ingestion (issue 6): Facebook uploads, run details ---
    path("ingestion/", include("ingestion.urls")),
    # --- attribution (issue 7, item 4): before any "reports/" include so its prefix wins ---
    path("reports/attribution/", include("reporting.attribution.urls")),
    # --- reporting (issue 7): dashboard, summaries, exports (attribution mounts its own include before this) ---
    path("reports/", include("reporting.urls")),
    # --- orchestration (issue 14): programs (read-only for marketers), draft campaigns ---
    path("programs/", include("campaigns.urls")),
    path("segments/", include("segments.urls")),  # issue 13: event segments
    path("activation/", include("activation.urls")),  # issue 12: destinations and delivery settings
]

handler400 = json_or_html_handler(400, "Bad request.")
handler403 = json_or_html_handler(403, "You do not have permission to perform this action.")
handler404 = json_or_html_handler(404, "Not found.")
handler500 = json_or_html_handler(500, "Internal server error.")
