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
        "href": "/admin/activation/delivery/?status=failed",
    }


# --- the global deliveries list (global admin, /admin/activation/delivery/) --------------------------------
class _UnionRows:
    """Deliveries of several org schemas as one sliceable, countable list for Django's Paginator: one UNION ALL
    query per page (ordered newest first), one count; nothing is loaded beyond the page."""

    def __init__(self, schemas: list[tuple[str, str]], *, status: str, query: str) -> None:
        from django.db import connection

        parts, params = [], []
        quote = connection.ops.quote_name
        for slug, schema in schemas:
            where, args = ["true"], []
            if status:
                where.append("d.status = %s")
                args.append(status)
            if query:
                where.append("(dest.name ILIKE %s OR d.error ILIKE %s OR d.id::text = %s)")
                args += [f"%{query}%", f"%{query}%", query]
            parts.append(
                f"SELECT %s AS org_slug, d.id, d.status, d.dry_run, d.rows, d.added, d.removed, d.attempts, "
                f"d.error, d.created_at, d.finished_at, dest.name AS destination, dest.kind AS destination_kind "
                f"FROM {quote(schema)}.activation_delivery d "
                f"JOIN {quote(schema)}.activation_destination dest ON dest.id = d.destination_id "
                f"WHERE {' AND '.join(where)}"
            )
            params += [slug, *args]
        self.sql = " UNION ALL ".join(parts)
        self.params = params

    def count(self) -> int:
        from django.db import connection

        if not self.sql:
            return 0
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM ({self.sql}) u", self.params)
            return int(cursor.fetchone()[0])

    def __getitem__(self, window: slice) -> list[dict[str, Any]]:
        from django.db import connection

        if not self.sql:
            return []
        start, stop = window.start or 0, window.stop
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT * FROM ({self.sql}) u ORDER BY created_at DESC, org_slug, id DESC LIMIT %s OFFSET %s",
                [*self.params, stop - start, start],
            )
            names = [c.name for c in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def __len__(self) -> int:
        return self.count()


def global_deliveries_page(
    orgs: Any, *, status: str = "", org_slug: str = "", query: str = "", page: str | int = 1, per_page: int = 50
) -> dict[str, Any]:
    """One page of deliveries across the given (visible) orgs, newest first, filtered by status, org and a search
    over destination name, error text and delivery id. The caller passes only the orgs the user may see."""
    from django.core.paginator import Paginator

    from activation.models import DeliveryStatus

    visible = list(orgs.order_by("name"))
    chosen = [o for o in visible if not org_slug or o.slug == org_slug]
    status = status if status in DeliveryStatus.values else ""
    rows = _UnionRows([(o.slug, o.schema_name) for o in chosen], status=status, query=query.strip()[:200])
    paginator: Paginator[dict[str, Any]] = Paginator(rows, per_page)  # type: ignore[arg-type]
    page_obj = paginator.get_page(page)
    names = {o.slug: o.name for o in visible}
    for row in page_obj.object_list:
        row["org_name"] = names.get(row["org_slug"], row["org_slug"])
        row["url"] = f"/o/{row['org_slug']}/admin/activation/delivery/{row['id']}/change/"
    return {
        "page_obj": page_obj,
        "paginator": paginator,
        "orgs": visible,
        "statuses": DeliveryStatus.choices,
        "status": status,
        "org_slug": org_slug if chosen else "",
        "query": query,
    }
