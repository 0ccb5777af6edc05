"""What reporting contributes to the project layer (admin navigation, dashboard tiles, schedule, demo data) and
its listener of ingestion's "metrics_loaded" hook. Imported from ReportingConfig.ready(); see p360/core/registry.py.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from p360.core import registry
from reporting.admin_ui import cross_org_overview, org_kpis
from reporting.demo import load_demo_summaries
from reporting.rollup import campaign_deleted, metrics_loaded
from tenants.access import orgs_visible_to

registry.register_nav(
    site="org",
    group="Data",
    title="Summaries",
    icon="summarize",
    url_name="admin:reporting_summary_changelist",
    permission="reporting.view_summary",
    order=110,
)
# per visible org: spend/conversions 7 days vs 7 before, ingestion health
registry.register_dashboard_tile(
    site="global",
    key="reporting",
    order=50,
    build=lambda request: {"org_overview": cross_org_overview(orgs_visible_to(request.user))},
)
# spend and conversions of the last 7 days
registry.register_dashboard_tile(
    site="org", key="reporting", order=50, build=lambda request: {"kpis": org_kpis(request.org)}
)
# summaries at 07:00 UTC (previous week on Mondays, previous month on the 1st)
registry.register_schedule(
    name="p360: summary aggregation", func="reporting.tasks.daily_aggregate", cron=lambda: settings.P360_AGGREGATE_CRON
)


def _summaries_demo(orgs: list[Any], created: dict[str, int]) -> None:
    load_demo_summaries(orgs)  # stored weekly/monthly summaries of the demo metrics (not reported)


registry.register_demo_loader(key="summaries", order=600, load=_summaries_demo)
# the ETL rewrote some days' metrics: rewrite the dashboard rollup of those days (same transaction) and, after
# commit, re-aggregate the stored summaries of past periods they fall in (late data)
registry.register_hook("metrics_loaded", key="reporting.rollup", fn=metrics_loaded)
# a deleted campaign's daily metrics go with it (ORM cascade, strategies included); so must its rollup rows, or the
# dashboard's totals would keep counting them (campaigns.services.campaign_delete calls this in its transaction)
registry.register_hook("campaign_deleted", key="reporting.rollup", fn=campaign_deleted)
