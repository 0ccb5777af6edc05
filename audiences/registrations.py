"""What audiences contributes to the project layer (admin navigation, dashboard tile, schedule, demo data).

Imported from AudiencesConfig.ready(); see p360/core/registry.py.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from audiences.builder_demo import load_builder_demo
from audiences.demo import load_demo_audiences
from audiences.insights import usage as insights_usage
from audiences.models import Audience
from audiences.retention import import_quarantine_step
from p360.core import registry

for order, title, icon, model in (
    (10, "Audiences", "groups", "audience"),
    (20, "Audience imports", "upload_file", "audienceimport"),
    (30, "Mapping templates", "table_rows", "mappingtemplate"),
    # issue 5: the audience builder
    (40, "Built audiences", "account_tree", "builtaudience"),
    (50, "Audience templates", "library_books", "audiencetemplate"),
):
    registry.register_nav(
        site="org",
        group="Data",
        title=title,
        icon=icon,
        url_name=f"admin:audiences_{model}_changelist",
        permission=f"audiences.view_{model}",
        order=order,
    )


def _org_tile(request: Any) -> dict[str, Any]:
    return {
        "kpis": [
            {
                "title": "Audiences",
                "value": Audience.objects.count(),
                "footer": "imported and built",
                "href": reverse("admin:audiences_audience_changelist"),
            }
        ]
    }


registry.register_dashboard_tile(site="org", key="audiences", order=10, build=_org_tile)
# the marketer home page (p360/org_views.py)
registry.register_dashboard_tile(
    site="home",
    key="audiences",
    order=10,
    build=lambda request: {
        "audience_count": Audience.objects.count(),
        "recent_audiences": Audience.objects.select_related("created_by")[:5],
    },
)
# issue 5: re-materialise every org's built audiences daily (they also refresh after each import)
registry.register_schedule(
    name="p360: refresh built audiences", func="audiences.jobs.start_refresh_jobs", minutes=24 * 60
)
registry.register_demo_loader(key="audiences", order=100, load=load_demo_audiences)


def _builder_demo(orgs: list[Any], created: dict[str, int]) -> dict[str, int]:
    return load_builder_demo(orgs)


# after the Bombora demo week (order 400), when there is one
registry.register_demo_loader(key="builder", order=500, load=_builder_demo)

# retention (issue 16, "logs" 90 days): audience imports' quarantine files (the import rows stay)
registry.register_retention_step(
    kind="logs",
    key="audience_quarantine_files",
    order=10,
    run=import_quarantine_step,
    entity_type="audiences.audienceimport",
)

# lineage ("used by", issue 18): campaigns and derived audiences; other apps register theirs the same way
registry.register_audience_usage(key="campaigns", order=10, provider=insights_usage.campaigns)
registry.register_audience_usage(key="derived_audiences", order=20, provider=insights_usage.derived)
