"""Reads for ingestion: the health summary shown on the admin dashboards."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, Max, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from ingestion.models import IngestionRun, RunStatus


def runs_for_org_q(org: Any) -> Q:
    """An org's runs: its own, and multi-organisation REDS runs holding rows of it (loaded or quarantined)."""
    return (
        Q(org=org) | Q(org__isnull=True, routed__has_key=org.slug) | Q(org__isnull=True, org_slices__has_key=org.slug)
    )


def runs_for_org(org: Any) -> QuerySet[IngestionRun]:
    return IngestionRun.objects.filter(runs_for_org_q(org))


def health(runs: QuerySet[IngestionRun], hours: int = 24) -> dict[str, Any]:
    """Counts of the last `hours`, and per source the last run's status and age."""
    since = timezone.now() - timedelta(hours=hours)
    counts = runs.filter(created_at__gte=since).aggregate(
        succeeded=Count("pk", filter=Q(status=RunStatus.SUCCEEDED)),
        failed=Count("pk", filter=Q(status=RunStatus.FAILED)),
        running=Count("pk", filter=Q(status__in=[RunStatus.RUNNING, RunStatus.QUEUED])),
    )
    latest = runs.values("source").annotate(last=Max("created_at"))
    per_source = []
    for row in latest.order_by("source"):
        last = runs.filter(source=row["source"], created_at=row["last"]).first()
        if last is not None:
            per_source.append({"source": last.get_source_display(), "status": last.status, "at": last.created_at})
    return {**counts, "per_source": per_source}


def health_kpi(runs: QuerySet[IngestionRun]) -> dict[str, Any]:
    """One dashboard card: failed runs in the last 24 h, and the last status of each source."""
    summary = health(runs)
    parts = [f"{item['source']} {item['status']}" for item in summary["per_source"]]
    return {
        "title": "Ingestion failures (24 h)",
        "value": summary["failed"],
        "footer": f"{summary['succeeded']} succeeded, {summary['running']} running"
        + (" · last: " + ", ".join(parts) if parts else " · no runs yet"),
        "href": reverse("admin:ingestion_ingestionrun_changelist") + "?status__exact=failed",
    }
