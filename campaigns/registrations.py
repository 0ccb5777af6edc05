"""What campaigns contributes to the project layer (admin navigation, dashboard tile, demo data).

Imported from CampaignsConfig.ready(); see p360/core/registry.py.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from campaigns.demo import load_demo_campaigns
from campaigns.models import Campaign, CampaignStatus
from p360.core import registry

for order, title, icon, model in (
    (60, "Campaigns", "campaign", "campaign"),
    # ingestion (issue 6)
    (80, "Strategies", "account_tree", "strategy"),
    (90, "Daily metrics", "monitoring", "dailymetric"),
    (100, "CPM rates", "payments", "cpmrate"),
    # reporting (issue 7)
    (120, "Client settings", "tune", "clientsettings"),
):
    registry.register_nav(
        site="org",
        group="Data",
        title=title,
        icon=icon,
        url_name=f"admin:campaigns_{model}_changelist",
        permission=f"campaigns.view_{model}",
        order=order,
    )


def _org_tile(request: Any) -> dict[str, Any]:
    return {
        "kpis": [
            {
                "title": "Campaigns",
                "value": Campaign.objects.count(),
                "footer": f"{Campaign.objects.filter(status=CampaignStatus.ACTIVE).count()} active",
                "href": reverse("admin:campaigns_campaign_changelist"),
            }
        ]
    }


registry.register_dashboard_tile(site="org", key="campaigns", order=20, build=_org_tile)
# the marketer home page (p360/org_views.py)
registry.register_dashboard_tile(
    site="home",
    key="campaigns",
    order=20,
    build=lambda request: {
        "campaign_count": Campaign.objects.count(),
        "active_campaign_count": Campaign.objects.filter(status=CampaignStatus.ACTIVE).count(),
        "recent_campaigns": Campaign.objects.all()[:5],
    },
)
registry.register_demo_loader(key="campaigns", order=200, load=load_demo_campaigns)
