"""Campaigns' retention step (issue 16, "metrics": 13 months): daily metrics older than the cut-off are archived
to the org's storage as Parquet, then deleted. Registered in campaigns/registrations.py; run by the core's engine
in the org's schema and transaction (with reporting's rollups: one transaction for both)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from campaigns.models import DailyMetric
from p360.core.jobs.retention import archive_then_delete

if TYPE_CHECKING:
    from tenants.models import Organization


def metrics_step(org: Organization, *, cutoff: dt.date, dry_run: bool) -> dict[str, Any]:
    result = archive_then_delete(org, DailyMetric, DailyMetric.objects.filter(date__lt=cutoff), dry_run=dry_run)
    if not dry_run and any(result.get("rows", {}).values()):
        # pacing's running totals start again from the oldest day kept (same transaction)
        from campaigns.spend_totals import rebuild

        rebuild()
    return result
