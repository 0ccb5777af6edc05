"""What tenants contributes to the global admin (navigation, dashboard tiles). Imported from TenantsConfig.ready()."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from p360.core import registry
from tenants.access import orgs_manageable_by, users_manageable_by

for order, title, icon, model in (
    (10, "Organisations", "domain", "organization"),
    (20, "Users", "group", "user"),
    (30, "Org assignments", "assignment_ind", "membership"),
    (40, "API tokens", "key", "apitoken"),
    # identity (issue 3)
    (50, "Invitations", "mail", "invitation"),
):
    registry.register_nav(
        site="global",
        group="Organisations and people",
        title=title,
        icon=icon,
        url_name=f"admin:tenants_{model}_changelist",
        permission=f"tenants.view_{model}",
        order=order,
    )


def _global_tile(request: Any) -> dict[str, Any]:
    orgs = orgs_manageable_by(request.user)
    return {
        "kpis": [
            {
                "title": "Organisations",
                "value": orgs.filter(is_active=True).count(),
                "footer": f"{orgs.filter(is_active=False).count()} inactive",
                "href": reverse("admin:tenants_organization_changelist"),
            },
            {
                "title": "Users",
                "value": users_manageable_by(request.user).filter(is_active=True).count(),
                "footer": "active accounts",
                "href": reverse("admin:tenants_user_changelist"),
            },
        ]
    }


registry.register_dashboard_tile(site="global", key="tenants", order=10, build=_global_tile)
