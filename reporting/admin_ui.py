"""Report figures for the two admin dashboards (wired in from p360/admin_ui.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from django_tenants.utils import schema_context

from ingestion.selectors import health, runs_for_org
from reporting import selectors
from reporting.periods import previous_range


def _last7() -> tuple[dt.date, dt.date]:
    end = timezone.now().date() - dt.timedelta(days=1)
    return end - dt.timedelta(days=6), end


def _change(delta: dict[str, Any]) -> str:
    return "no previous figure" if delta["pct"] is None else f"{delta['pct']} % vs previous 7 days"


def org_kpis(org: Any) -> list[dict[str, Any]]:
    """Two dashboard cards of the current org: spend and conversions of the last 7 days."""
    start, end = _last7()
    kpis = selectors.kpis(start, end)
    link = f"/o/{org.slug}/reports/?preset=last7"
    return [
        {
            "title": "Spend, last 7 days",
            "value": kpis["current"]["spend"],
            "footer": _change(kpis["deltas"]["spend"]),
            "href": link,
        },
        {
            "title": "Conversions, last 7 days",
            "value": kpis["current"]["conversions"],
            "footer": _change(kpis["deltas"]["conversions"]),
            "href": link,
        },
    ]


def cross_org_overview(orgs: QuerySet[Any]) -> dict[str, Any]:
    """Per org the user may see (the caller passes tenants.access's queryset): spend and conversions
    of the last 7 days against the 7 before (from each org's rollup, entering its schema), and
    ingestion health (failed runs in 24 h, newest complete day per source)."""
    start, end = _last7()
    prev_start, prev_end = previous_range(start, end)
    rows = []
    for org in orgs.filter(is_active=True).order_by("name")[:50]:
        with schema_context(org.schema_name):
            kpis = selectors.kpis(start, end)
        runs = runs_for_org(org)
        ingest = health(runs)
        fresh = selectors.data_complete_up_to(org)
        rows.append(
            {
                "org": org,
                "spend": kpis["current"]["spend"],
                "spend_prev": kpis["previous"]["spend"],
                "spend_pct": kpis["deltas"]["spend"]["pct"],
                "conversions": kpis["current"]["conversions"],
                "conversions_prev": kpis["previous"]["conversions"],
                "conversions_pct": kpis["deltas"]["conversions"]["pct"],
                "failed_runs": ingest["failed"],
                "fresh": ", ".join(f"{item['label']} {item['day']:%d %b}" for item in fresh) or "no data yet",
                "reports_url": f"/o/{org.slug}/reports/?preset=last7",
            }
        )
    return {"range": f"{start} to {end} vs {prev_start} to {prev_end}", "rows": rows}
