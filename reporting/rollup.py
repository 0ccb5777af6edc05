"""The daily rollup (per date, campaign, strategy, source) and the hook ingestion calls.

`metrics_loaded(dates)` is the one call from the ingestion ETL (`campaigns_dailymetric` rewritten
for those days): it rewrites the rollup of those days inside the same transaction, so the dashboard
never sees facts and rollup disagree, and, once the transaction commits, enqueues re-aggregation of
the stored summaries those days belong to (late data for a past period regenerates its summary).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from django.db import connection, transaction

from p360.core.jobs.dispatch import enqueue_for_org
from reporting.models import DailyRollup
from tenants.models import Organization

logger = logging.getLogger(__name__)


def refresh_days(days: Iterable[dt.date]) -> int:
    """Rewrite the rollup of `days` from the daily metrics; returns the rollup rows written."""
    day_list = sorted(set(days))
    if not day_list:
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM reporting_dailyrollup WHERE date = ANY(%s)", [day_list])
        cursor.execute(
            """INSERT INTO reporting_dailyrollup (date, campaign_id, strategy_id, source, impressions, clicks,
                   conversions, conversion_revenue, spend, rows)
               SELECT date, campaign_id, strategy_id, source, sum(impressions), sum(clicks), sum(conversions),
                   sum(conversion_revenue), sum(spend), count(*)
               FROM campaigns_dailymetric WHERE date = ANY(%s)
               GROUP BY date, campaign_id, strategy_id, source""",
            [day_list],
        )
        return cursor.rowcount


def refresh_range(start: dt.date, end: dt.date) -> int:
    return refresh_days(start + dt.timedelta(days=n) for n in range((end - start).days + 1))


def metrics_loaded(dates: Iterable[dt.date | str]) -> None:
    """Called by the ingestion ETL after it rewrote the daily metrics of `dates` (current schema)."""
    days = sorted({d if isinstance(d, dt.date) else dt.date.fromisoformat(d) for d in dates})
    if not days:
        return
    refresh_days(days)
    from reporting.tasks import stale_periods

    if not stale_periods(days):  # no stored summary covers these days: nothing to regenerate
        return
    schema = connection.schema_name  # type: ignore[attr-defined]
    # After commit: the worker must see the new facts; a rolled-back load enqueues nothing.
    transaction.on_commit(lambda: _enqueue_reaggregation(schema, days))


def _enqueue_reaggregation(schema: str, days: list[dt.date]) -> None:

    org = Organization.objects.filter(schema_name=schema).first()
    if org is None or not org.is_active:
        return
    enqueue_for_org(org, "reporting.tasks.days_changed", [d.isoformat() for d in days], task_name=f"{org.slug}:days")


def campaign_deleted(*, campaign_id: int) -> None:
    """Drop the rollup rows of a deleted campaign (all its strategies: rows carry the campaign id)."""
    DailyRollup.objects.filter(campaign_id=campaign_id).delete()
