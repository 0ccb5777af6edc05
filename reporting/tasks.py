"""Scheduled and triggered aggregation (django-q2).

- `daily_aggregate` (07:00 UTC, public schema): one task per active org.
- `aggregate_org` (inside an org): the current week and month so far; on Mondays also the previous
  week, on the 1st also the previous month.
- `days_changed` (inside an org, enqueued after an ingestion run commits): late data. The periods
  containing the loaded days are regenerated when they have ended or are already stored, and the
  following period too when it is stored (its deltas compare against the changed one).
"""

from __future__ import annotations

import datetime as dt
import logging

from django.utils import timezone

from p360.jobs.dispatch import enqueue_for_org, org_task
from reporting.models import Summary
from reporting.periods import next_start, period_end, period_start_of, periods_of, previous_start
from reporting.services import NoData, remove_summary, store_summary

logger = logging.getLogger(__name__)


def daily_aggregate(today: str | None = None) -> int:
    from tenants.models import Organization

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


@org_task
def days_changed(days: list[str], today: str | None = None) -> list[str]:
    now = dt.date.fromisoformat(today) if today else timezone.now().date()
    stored = set(Summary.objects.values_list("period", "start"))
    todo: list[tuple[str, dt.date]] = []
    for period, start in periods_of(dt.date.fromisoformat(d) for d in days):
        if (period, start) in stored or period_end(period, start) < now:
            todo.append((period, start))
        following = (period, next_start(period, start))
        if following in stored:
            todo.append(following)
    done = []
    for period, start in dict.fromkeys(todo):
        if _store_or_skip(period, start, "late data"):
            done.append(f"{period}:{start.isoformat()}")
        else:
            remove_summary(period=period, start=start)
    logger.info("re-aggregated after new data: %s", done)
    return done
