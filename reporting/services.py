"""Writes of the reports: stored summaries (replaced in one transaction) and their rollup days."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from p360.core.audit.services import record
from reporting import rollup
from reporting.models import Summary
from reporting.periods import check_period, period_end
from reporting.selectors import compute_summary


class NoData(ValueError):
    """The period has no daily metrics: nothing to summarise (and any stored summary is removed)."""


def store_summary(*, period: str, start: dt.date, generated_by: str, org: Any = None, actor: Any = None) -> Summary:
    """Compute and store one summary (current schema), replacing any previous one atomically.

    The period's rollup days are rewritten first, so the dashboard and the summary agree even if
    metrics were written by something other than the ingestion ETL.
    """
    check_period(period, start)
    end = period_end(period, start)
    with transaction.atomic():
        rollup.refresh_range(start, end)
        body = compute_summary(period, start)
        Summary.objects.filter(period=period, start=start).delete()
        if body["daily_rows"] == 0:
            raise NoData(f"no metrics between {start.isoformat()} and {end.isoformat()}")
        summary = Summary.objects.create(
            period=period,
            start=start,
            end=end,
            totals=body["totals"],
            previous=body["previous_totals"],
            deltas=body["deltas"],
            top_campaigns=body["top_campaigns"],
            top_creatives=body["top_creatives"],
            underperformers=body["underperformers"],
            thresholds=body["thresholds"],
            daily_rows=body["daily_rows"],
            generated_at=timezone.now(),
            generated_by=generated_by,
        )
        if org is not None:
            record(
                action="reporting.summary_stored",
                actor=actor,
                org=org,
                entity=summary,
                after={"period": period, "start": start.isoformat(), "by": generated_by},
            )
    return summary


def remove_summary(*, period: str, start: dt.date) -> int:
    """A period whose data disappeared loses its stored summary (no stale figures)."""
    deleted, _ = Summary.objects.filter(period=period, start=start).delete()
    return deleted
