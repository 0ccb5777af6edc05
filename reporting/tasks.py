"""Scheduled and triggered aggregation (django-q2).

- `daily_aggregate` (07:00 UTC, public schema): one task per active org.
- `aggregate_org` (inside an org): the current week and month so far; on Mondays also the previous
  week, on the 1st also the previous month.
- `days_changed` (inside an org, enqueued after an ingestion run commits when it touched days of a
  stored summary): late data. The stored periods containing the loaded days are regenerated, and the
  following stored period too (its deltas compare against the changed one).
"""

from __future__ import annotations

import datetime as dt
import logging

from django.utils import timezone

from p360.core.jobs.dispatch import enqueue_for_org, org_task
from reporting.models import Summary
from reporting.periods import next_start, period_start_of, periods_of, previous_start
from reporting.services import NoData, remove_summary, store_summary
from tenants.models import Organization

logger = logging.getLogger(__name__)


def daily_aggregate(today: str | None = None) -> int:

    count = 0
    for org in Organization.objects.active():
        enqueue_for_org(org, "reporting.tasks.aggregate_org", today, task_name=f"{org.slug}:aggregate")
        count += 1
    return count


def scheduled_periods(today: dt.date) -> list[tuple[str, dt.date]]:
    out = [("week", period_start_of("week", today)), ("month", period_start_of("month", today))]
    if today.weekday() == 0:
        out.insert(0, ("week", previous_start("week", period_start_of("week", today))))
    if today.day == 1:
        out.insert(0, ("month", previous_start("month", today)))
    return out


def _store_or_skip(period: str, start: dt.date, by: str) -> bool:
    try:
        store_summary(period=period, start=start, generated_by=by)
    except NoData:
        return False
    return True


@org_task
def aggregate_org(today: str | None = None) -> list[str]:
    day = dt.date.fromisoformat(today) if today else timezone.now().date()
    done = []
    for period, start in scheduled_periods(day):
        if _store_or_skip(period, start, "schedule"):
            done.append(f"{period}:{start.isoformat()}")
    return done


def stale_periods(days: list[dt.date]) -> list[tuple[str, dt.date]]:
    """Stored summaries that new data for `days` makes stale: the stored periods containing those days,
    and the stored period after each (its deltas compare against the changed one). Periods never
    stored are left alone: the API and pages compute those on the fly, and the schedule stores them."""
    stored = set(Summary.objects.values_list("period", "start"))
    if not stored:
        return []
    todo: list[tuple[str, dt.date]] = []
    for period, start in periods_of(days):
        for candidate in ((period, start), (period, next_start(period, start))):
            if candidate in stored:
                todo.append(candidate)
    return list(dict.fromkeys(todo))


@org_task
def days_changed(days: list[str]) -> list[str]:
    done = []
    for period, start in stale_periods([dt.date.fromisoformat(d) for d in days]):
        if _store_or_skip(period, start, "late data"):
            done.append(f"{period}:{start.isoformat()}")
        else:
            remove_summary(period=period, start=start)
    logger.info("re-aggregated after new data: %s", done)
    return done
