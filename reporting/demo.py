"""Demo summaries: the weeks and months of the demo metrics, stored like the 07:00 UTC run does."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from django_tenants.utils import schema_context

from reporting.models import Summary
from reporting.periods import period_start_of, previous_start
from reporting.services import NoData, store_summary

WEEKS = 5
MONTHS = 2


def load_demo_summaries(orgs: list[Any]) -> int:
    """Store the last few weekly and monthly summaries of each demo org when they are missing (idempotent)."""
    today = timezone.now().date()
    periods: list[tuple[str, dt.date]] = []
    week = period_start_of("week", today)
    for _ in range(WEEKS):
        periods.append(("week", week))
        week = previous_start("week", week)
    month = period_start_of("month", today)
    for _ in range(MONTHS):
        periods.append(("month", month))
        month = previous_start("month", month)
    stored = 0
    for org in orgs:
        with schema_context(org.schema_name):
            have = set(Summary.objects.values_list("period", "start"))
            for period, start in periods:
                if (period, start) in have:
                    continue
                try:
                    store_summary(period=period, start=start, generated_by="demo")
                except NoData:
                    continue
                stored += 1
    return stored
