"""Reads for the activation pages, API and admin (never credentials)."""

from __future__ import annotations

from typing import Any

from django.db.models import Count

from activation.delivery import next_delivery_at
from activation.exports import segment_id
from activation.identities import match_stats_for_view
from activation.models import Delivery, DeliveryStatus, Destination, IcpSeed, TtdMember, TtdMemberStatus
from activation.services import config, destination_snapshot
from activation.ttd import NAME_MAX
from audiences.models import Audience
from p360.core.registry import AudienceUsage


def delivery_row(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.pk,
        "destination": d.destination.name,
        "destination_kind": d.destination.kind,
        "status": d.status,
        "dry_run": d.dry_run,
        "rows": d.rows,
        "added": d.added,
        "removed": d.removed,
        "diff_note": d.diff_note,
        "files": d.files,
        "skipped": d.skipped,
        "checksum": d.checksum,
        "attempts": d.attempts,
        "failed_lines": d.failed_lines,
        "receipt": d.receipt,
        "alerts": d.alerts,
        "error": d.error,
        "job_id": d.job_id,
        "created_at": d.created_at.isoformat(),
        "finished_at": d.finished_at.isoformat() if d.finished_at else None,
    }


def destination_row(d: Destination) -> dict[str, Any]:
    last = Delivery.objects.filter(destination=d, dry_run=False).order_by("-created_at", "-pk").first()
    nxt = next_delivery_at(d)
    return {
        "id": d.pk,
        **destination_snapshot(d),
        "audiences": list(d.audiences.values_list("pk", flat=True)),
        "last_delivery": delivery_row(last) if last else None,
        "next_delivery_at": nxt.isoformat() if nxt else None,
    }


def deliveries(destination_name: str | None = None) -> Any:
    qs = Delivery.objects.select_related("destination").order_by("-created_at", "-pk")
    if destination_name:
        qs = qs.filter(destination__name=destination_name)
    return qs


def config_row() -> dict[str, Any]:
    c = config()
    return {
        "enabled": c.enabled,
        "cadence": c.cadence,
        "lookback_days": c.lookback_days,
        "push_mode": c.push_mode,
        "shrink_alert_share": float(c.shrink_alert_share),
        "alert_emails": [e for e in c.alert_emails.split(",") if e],
        "ttd_ttl_days": c.ttd_ttl_days,
        "ttd_base_bid_cpm": str(c.ttd_base_bid_cpm),
    }


def audience_activation(audience: Audience) -> dict[str, Any]:
    """The Activation panel / API: match rate, destinations carrying the audience, last and next delivery. The match
    figures are the stored ones (`uid2.state`: current, refreshing while a job recounts them, or counting)."""
    stats = match_stats_for_view(audience)
    destinations = [d for d in Destination.objects.filter(audiences=audience).order_by("name")]
    rows: list[dict[str, Any]] = []
    for d in destinations:
        last = (
            Delivery.objects.filter(destination=d, dry_run=False)
            .exclude(status=DeliveryStatus.PENDING)
            .order_by("-created_at", "-pk")
            .first()
        )
        nxt = next_delivery_at(d)
        rows.append({"id": d.pk, "name": d.name, "kind": d.kind, "enabled": d.enabled,
                     "last_delivery": delivery_row(last) if last else None,
                     "next_delivery_at": nxt.isoformat() if nxt else None})  # fmt: skip
    last_any = max((r["last_delivery"] for r in rows if r["last_delivery"]), key=lambda r: r["id"], default=None)
    seed = IcpSeed.objects.filter(audience=audience).first()
    return {
        "audience_id": audience.pk,
        "uid2": stats,
        "match_rate": stats["match_rate"],
        "destinations": rows,
        "last_delivery": last_any,
        "next_delivery_at": min((r["next_delivery_at"] for r in rows if r["next_delivery_at"]), default=None),
        "icp_seed": {
            "name": seed.name,
            "ids": seed.ids,
            "last_exported_at": seed.last_exported_at.isoformat() if seed.last_exported_at else None,
            "last_error": seed.last_error,
        }
        if seed
        else None,
        "delivery_enabled": config().enabled,
    }


def audience_usages(audience: Audience) -> list[AudienceUsage]:
    """Where activation uses the audience, for its lineage (`p360.core.registry.register_audience_usage`, registered from
    activation/registrations.py): the destinations carrying it, the latest real deliveries that carried it (each
    delivery records its audiences, so a destination that dropped the audience later does not claim its new
    deliveries, and one that carried it once still shows that delivery), its TTD segments and its ICP seed."""
    destinations = list(Destination.objects.filter(audiences=audience).order_by("name"))
    found = [
        AudienceUsage(
            kind="destination", id=d.pk, name=d.name, detail=d.get_kind_display() + ("" if d.enabled else ", disabled")
        )
        for d in destinations
    ]
    deliveries = (
        Delivery.objects.filter(audiences=audience, dry_run=False)
        .exclude(status=DeliveryStatus.PENDING)
        .select_related("destination")
        .order_by("-created_at", "-pk")[:20]
    )
    found += [
        AudienceUsage(
            kind="delivery",
            id=d.pk,
            name=f"Delivery #{d.pk} to {d.destination.name}",
            detail=f"{d.get_status_display()}, {d.rows:,} rows, {d.created_at:%Y-%m-%d %H:%M}",
        )
        for d in deliveries
    ]
    segment = segment_id(audience)[:NAME_MAX]
    segments = (
        TtdMember.objects.filter(segment=segment, status=TtdMemberStatus.SENT)
        .values("destination_id", "destination__name")
        .annotate(members=Count("pk"))
        .order_by("destination__name")
    )
    found += [
        AudienceUsage(
            kind="ttd_segment",
            id=f"{s['destination_id']}:{segment}",
            name=segment,
            detail=f"{s['members']:,} UID2s in the segment at {s['destination__name']}",
        )
        for s in segments
    ]
    seed = IcpSeed.objects.filter(audience=audience).select_related("destination").first()
    if seed is not None:
        exported = f", exported {seed.last_exported_at:%Y-%m-%d}" if seed.last_exported_at else ", not exported yet"
        found.append(AudienceUsage(kind="icp_seed", id=seed.pk, name=seed.name,
                           detail=f"{seed.ids:,} ids to {seed.destination.name}{exported}"))  # fmt: skip
    return found
