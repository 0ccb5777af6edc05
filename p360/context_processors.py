"""Template context every page gets: environment, current org, the orgs the user may switch to."""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from p360.admin_ui import switch_org_path
from tenants.access import orgs_visible_to


def portal(request: HttpRequest) -> dict[str, Any]:
    org = getattr(request, "org", None)
    user = getattr(request, "user", None)

    def switcher() -> list[dict[str, Any]]:
        if user is None or not user.is_authenticated:
            return []
        return [
            {
                "org": other,
                "url": switch_org_path(request.path, other.slug),
                "current": org is not None and other.pk == org.pk,
            }
            for other in orgs_visible_to(user).only("name", "slug")
        ]

    @functools.cache
    def currency() -> str:
        """The org's reporting currency (client settings), for the figure filters; USD outside an org."""
        if org is None:
            return "USD"
        from campaigns.models import ClientSettings

        return ClientSettings.objects.values_list("currency", flat=True).first() or "USD"

    return {
        "currency": currency,  # callable: one query, only on pages that show money
        "p360_env": "test" if settings.TESTING and not settings.IS_PROD else settings.P360_ENV,
        "current_org": org,
        "org_switcher": switcher,  # callable: evaluated only by templates that show it
    }
