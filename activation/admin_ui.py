"""Dashboard pieces of activation: deliveries across organisations (global admin) and a failures KPI.

The ledger lives in each org's schema; the global view reads every visible org's schema in turn."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from django_tenants.utils import schema_context


def cross_org_deliveries(orgs: Any, *, limit: int = 10, days: int = 7) -> dict[str, Any]:
    """The latest deliveries of every org (newest first) and the failures of the last `days` days."""
    from activation.models import Delivery, DeliveryStatus

    since = timezone.now() - dt.timedelta(days=days)
    rows: list[dict[str, Any]] = []
    failed = 0
    for org in orgs:
        with schema_context(org.schema_name):
            failed += Delivery.objects.filter(status=DeliveryStatus.FAILED, created_at__gte=since).count()
            for d in (
                Delivery.objects.select_related("destination").filter(dry_run=False).order_by("-created_at")[:limit]
            ):
                rows.append({
                    "org": org, "id": d.pk, "destination": d.destination.name, "status": d.status, "rows": d.rows,
                    "added": d.added, "removed": d.removed, "error": d.error, "created_at": d.created_at,
                    "url": f"/o/{org.slug}/admin/activation/delivery/{d.pk}/change/",
                })  # fmt: skip
    rows.sort(key=lambda r: r["created_at"], reverse=True)
    return {"rows": rows[:limit], "failed": failed, "days": days}


def deliveries_kpi(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": "Delivery failures",
        "value": summary["failed"],
        "footer": f"last {summary['days']} days, all organisations",
        "href": "/admin/jobs/job/?kind=activation.deliver&status=failed",
    }
