"""What campaigns contributes to the project layer (admin navigation, dashboard tiles, schedule, demo data).

Imported from CampaignsConfig.ready(); see p360/core/registry.py.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from campaigns import spend_totals
from campaigns.demo import load_demo_campaigns, load_demo_orchestration
from campaigns.models import Campaign, CampaignStatus, PacingAlert
from campaigns.retention import metrics_step
from p360.core import registry

for order, title, icon, model in (
    # orchestration (issue 14): programs > campaigns > line items, then what the automation did
    (55, "Programs", "account_balance", "program"),
    (60, "Campaigns", "campaign", "campaign"),
    (62, "Line items", "view_list", "lineitem"),
    (64, "Pacing alerts", "notifications", "pacingalert"),
    (66, "Automatic actions", "smart_toy", "automationaction"),
    (68, "TTD sync log", "sync", "synclog"),
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


def _pacing_tile(request: Any) -> dict[str, Any]:
    """Open (unacknowledged) pacing alerts of the org (issue 14)."""
    open_alerts = PacingAlert.objects.filter(acknowledged=False)
    total = open_alerts.count()
    over = open_alerts.filter(status="over").count()
    return {
        "kpis": [
            {
                "title": "Pacing alerts",
                "value": total,
                "footer": f"{over} over pace or budget, {total - over} under",
                "href": reverse("admin:campaigns_pacingalert_changelist") + "?acknowledged__exact=0",
            }
        ]
    }


registry.register_dashboard_tile(site="org", key="campaigns", order=20, build=_org_tile)
# after the other apps' cards (orchestration, issue 14)
registry.register_dashboard_tile(site="org", key="campaigns.pacing", order=60, build=_pacing_tile)
# pacing alerts, pause at budget and performance rules, every active org, hourly (issue 14)
registry.register_schedule(name="p360: pacing checks", func="campaigns.tasks.check_all_orgs", minutes=60)
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
# programs, line items and 60 days of spend (after ingestion's demo data, so its CPM rates exist)
registry.register_demo_loader(key="orchestration", order=900, load=load_demo_orchestration)
# pacing's running spend totals follow every load and campaign delete, in the same transaction (issue 14)
registry.register_hook("metrics_loaded", key="campaigns.spend_totals", fn=spend_totals.metrics_loaded)
registry.register_hook("campaign_deleted", key="campaigns.spend_totals", fn=spend_totals.campaign_deleted)

# retention (issue 16): daily metrics 13 months, archived as Parquet (reporting's rollups follow at order 20)
registry.register_retention_step(
    kind="metrics", key="campaigns_dailymetric", order=10, run=metrics_step, entity_type="campaigns.dailymetric"
)
