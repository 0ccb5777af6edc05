"""Reporting's retention step (issue 16, "metrics": 13 months): the daily rollups built from the metrics go with
them (archived as Parquet, then deleted, in the same transaction as campaigns' step). Summaries are kept forever.
Registered in reporting/registrations.py."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from p360.core.jobs.retention import archive_then_delete
from reporting.models import DailyRollup

if TYPE_CHECKING:
    from tenants.models import Organization


def rollups_step(org: Organization, *, cutoff: dt.date, dry_run: bool) -> dict[str, Any]:
    return archive_then_delete(org, DailyRollup, DailyRollup.objects.filter(date__lt=cutoff), dry_run=dry_run)
