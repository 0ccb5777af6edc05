"""What ingestion contributes to the project layer (admin navigation incl. Bombora's admin, dashboard tiles,
schedules, demo data). Imported from IngestionConfig.ready(); see p360/core/registry.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings

from ingestion.bombora_demo import load_demo_bombora
from ingestion.demo import load_demo_metrics
from ingestion.models import IngestionRun
from ingestion.selectors import health_kpi, runs_for_org
from ingestion.tasks import CRON_SCHEDULES
from p360.core import registry
from tenants.access import restrict_by_org

for site, order in (("global", 20), ("org", 10)):
    registry.register_nav(
        site=site,  # type: ignore[arg-type]
        group="Operations",
        title="Ingestion runs",
        icon="cloud_download",
        url_name="admin:ingestion_ingestionrun_changelist",
        permission="ingestion.view_ingestionrun",
        order=order,
    )
# Bombora intent data (issue 5): its admin (ingestion/bombora_admin.py) uploads through ingestion runs
for order, title, icon, model in (
    (40, "Bombora weeks", "trending_up", "bomboraweek"),
    (50, "Bombora topics", "topic", "bomboratopic"),
):
    registry.register_nav(
        site="global",
        group="Operations",
        title=title,
        icon=icon,
        url_name=f"admin:bombora_{model}_changelist",
        permission=f"bombora.view_{model}",
        order=order,
    )

# the health of the paid-media sources
registry.register_dashboard_tile(
    site="global",
    key="ingestion",
    order=40,
    build=lambda request: {"kpis": [health_kpi(restrict_by_org(IngestionRun.objects.all(), request.user))]},
)
registry.register_dashboard_tile(
    site="org", key="ingestion", order=40, build=lambda request: {"kpis": [health_kpi(runs_for_org(request.org))]}
)


def _cron(setting: str) -> Callable[[], str]:
    return lambda: getattr(settings, setting)


# cron schedules (Surfside 05:00, Vibe 06:00, REDS hourly, Bombora pickup 07:00; UTC, configurable)
for name, func, setting in CRON_SCHEDULES:
    registry.register_schedule(name=name, func=func, cron=_cron(setting))


def _metrics_demo(orgs: list[Any], created: dict[str, int]) -> dict[str, int]:
    return load_demo_metrics(orgs)  # four weeks of metrics from every source, through the real ETL


def _bombora_demo(orgs: list[Any], created: dict[str, int]) -> dict[str, Any]:
    return load_demo_bombora()  # one week of intent data, global, through the real loader


registry.register_demo_loader(key="metrics", order=300, load=_metrics_demo)
registry.register_demo_loader(key="bombora", order=400, load=_bombora_demo)
