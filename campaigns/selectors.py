"""Reads of campaign data: CPM in force, client settings, metrics aggregation for the API."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import F, QuerySet, Sum

from campaigns.models import Campaign, ClientSettings, CpmRate, DailyMetric


def cpm_in_force(day: dt.date) -> CpmRate | None:
    """The CPM rate whose effective date is the latest on or before `day`."""
    return CpmRate.objects.filter(effective_date__lte=day).order_by("-effective_date").first()


def cpm_by_date(days: Iterable[dt.date]) -> dict[dt.date, Decimal]:
    rates = list(CpmRate.objects.order_by("effective_date").values_list("effective_date", "cpm"))
    out: dict[dt.date, Decimal] = {}
    for day in days:
        current = None
        for effective, cpm in rates:
            if effective <= day:
                current = cpm
            else:
                break
        if current is not None:
            out[day] = current
    return out


def client_settings() -> ClientSettings:
    """The current org's settings row (created on first use)."""
    settings_row = ClientSettings.objects.order_by("pk").first()
    return settings_row if settings_row is not None else ClientSettings.objects.create()


# --- Metrics (document 004, appendix A.1) ----------------------------------------------------------

PLACES = {"spend": 2, "conversion_revenue": 2, "ctr": 6, "cpc": 4, "cpa": 4, "roas": 4}
GROUPS: dict[str, list[tuple[str, str]]] = {
    # group_by -> [(output key, ORM path)]
    "date": [("date", "date")],
    "source": [("source", "source")],
    # orchestration (issue 14): campaigns without a program (ingested, not yet assigned) give null
    "program": [("program_id", "campaign__program_id"), ("program", "campaign__program__name")],
    "campaign": [
        ("campaign_id", "campaign_id"),
        ("campaign", "campaign__name"),
        ("campaign_source", "campaign__source"),
    ],
    "strategy": [
        ("campaign_id", "campaign_id"),
        ("campaign", "campaign__name"),
        ("strategy_id", "strategy_id"),
        ("strategy", "strategy__name"),
    ],
    "placement": [
        ("campaign_id", "campaign_id"),
        ("campaign", "campaign__name"),
        ("strategy_id", "strategy_id"),
        ("strategy", "strategy__name"),
        ("placement_id", "placement_id"),
        ("placement", "placement__name"),
    ],
    "creative": [
        ("campaign_id", "campaign_id"),
        ("campaign", "campaign__name"),
        ("strategy_id", "strategy_id"),
        ("strategy", "strategy__name"),
        ("placement_id", "placement_id"),
        ("placement", "placement__name"),
        ("creative_id", "creative_id"),
        ("creative", "creative__name"),
    ],
}


def _q(value: Decimal | None, places: int) -> str | None:
    if value is None:
        return None
    return str(value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def _safe_div(numerator: Decimal, denominator: Decimal | int) -> Decimal | None:
    return None if not denominator else Decimal(numerator) / Decimal(denominator)


def derive(impressions: int, clicks: int, conversions: int, revenue: Decimal, spend: Decimal) -> dict[str, Any]:
    """A.1 on totals: CTR = clicks/impressions x 100, CPC = spend/clicks, CPA = spend/conversions,
    ROAS = revenue/spend x 100; a zero denominator gives None. Decimals as strings at A.1 precision."""
    ctr = _safe_div(Decimal(clicks) * 100, impressions)
    return {
        "impressions": impressions,
        "clicks": clicks,
        "conversions": conversions,
        "conversion_revenue": _q(revenue, PLACES["conversion_revenue"]),
        "spend": _q(spend, PLACES["spend"]),
        "ctr": _q(ctr, PLACES["ctr"]),
        "cpc": _q(_safe_div(spend, clicks), PLACES["cpc"]),
        "cpa": _q(_safe_div(spend, conversions), PLACES["cpa"]),
        "roas": _q(_safe_div(revenue * 100, spend) if spend else None, PLACES["roas"]),
    }


_SUMS = {
    "impressions": Sum("impressions"),
    "clicks": Sum("clicks"),
    "conversions": Sum("conversions"),
    "revenue": Sum("conversion_revenue"),
    "spend_exact": Sum("spend"),
}


def _row_figures(row: dict[str, Any]) -> dict[str, Any]:
    return derive(
        int(row["impressions"] or 0),
        int(row["clicks"] or 0),
        int(row["conversions"] or 0),
        Decimal(row["revenue"] or 0),
        Decimal(row["spend_exact"] or 0),
    )


def metrics_queryset(
    start: dt.date,
    end: dt.date,
    *,
    sources: list[str] | None = None,
    campaign_ids: list[int] | None = None,
    program_ids: list[int] | None = None,
) -> QuerySet[DailyMetric]:
    qs = DailyMetric.objects.filter(date__gte=start, date__lte=end)
    if sources:
        qs = qs.filter(source__in=sources)
    if campaign_ids:
        qs = qs.filter(campaign_id__in=campaign_ids)
    if program_ids:  # the campaigns of these programs (an id of no program of this org: nothing)
        qs = qs.filter(campaign_id__in=Campaign.objects.filter(program_id__in=program_ids).values("pk"))
    return qs


def metrics_report(
    start: dt.date,
    end: dt.date,
    group_by: list[str],
    *,
    sources: list[str] | None = None,
    campaign_ids: list[int] | None = None,
    program_ids: list[int] | None = None,
) -> dict[str, Any]:
    """Rows grouped by `group_by` (date, campaign, ... in that order) and totals, each with A.1 figures."""
    qs = metrics_queryset(start, end, sources=sources, campaign_ids=campaign_ids, program_ids=program_ids)
    fields: list[tuple[str, str]] = []
    for group in group_by:
        for key, path in GROUPS[group]:
            if key not in [k for k, _ in fields]:
                fields.append((key, path))
    # Aliased ("g_" prefix): output keys such as "campaign" would clash with the model's fields.
    annotations = {f"g_{key}": F(path) for key, path in fields}
    names = [key for key, _ in fields]
    aliases = [f"g_{key}" for key in names]
    rows: list[dict[str, Any]] = []
    if fields:
        # Readable order: by date and names first, ids only to break ties between equal names.
        order = [a for a in aliases if not a.endswith("_id")] + [a for a in aliases if a.endswith("_id")]
        grouped = qs.annotate(**annotations).values(*aliases).annotate(**_SUMS).order_by(*order)  # type: ignore[arg-type]
        for row in grouped:
            out: dict[str, Any] = {}
            for key, alias in zip(names, aliases, strict=True):
                value = row[alias]
                out[key] = value.isoformat() if isinstance(value, dt.date) else value
            out.update(_row_figures(row))
            rows.append(out)
    totals = _row_figures(qs.aggregate(**_SUMS))
    return {"start": start.isoformat(), "end": end.isoformat(), "group_by": group_by, "rows": rows, "totals": totals}


# --- Salesforce deep links (orchestration) ----------------------------------------------------------


def salesforce_opportunity_url(opportunity_id: str) -> str | None:
    """Lightning record page of the opportunity (None without an id); built in p360.core.salesforce."""
    from p360.core.salesforce import opportunity_url

    return opportunity_url(opportunity_id)


def salesforce_account_url(account_id: str) -> str | None:
    from p360.core.salesforce import account_url

    return account_url(account_id)


# --- Flight calendar (orchestration admin) ---------------------------------------------------------


def flight_calendar(month: str | None) -> dict[str, Any]:
    """Rows (program > campaign > line item) whose flight touches the month, with bar offsets in percent."""
    from django.urls import reverse
    from django.utils import timezone

    from campaigns.models import Program

    try:
        first = dt.date.fromisoformat(f"{month}-01") if month else timezone.localdate().replace(day=1)
    except ValueError:
        first = timezone.localdate().replace(day=1)
    last = (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
    days = (last - first).days + 1
    rows: list[dict[str, Any]] = []

    def add(obj: Any, start: dt.date | None, end: dt.date | None, indent: int, color: str, url: str) -> None:
        if (start and start > last) or (end and end < first):
            return
        lo = max(start or first, first)
        hi = min(end or last, last)
        rows.append(
            {
                "name": obj.name,
                "status": getattr(obj, "status", ""),
                "start": start,
                "end": end,
                "indent": indent,
                "color": color,
                "url": url,
                "left": round((lo - first).days / days * 100, 2),
                "width": round(((hi - lo).days + 1) / days * 100, 2),
            }
        )

    for program in Program.objects.prefetch_related("campaigns__line_items").order_by("start_date", "name"):
        add(
            program,
            program.start_date,
            program.end_date,
            0,
            "#1d4ed8",
            reverse("admin:campaigns_program_change", args=[program.pk]),
        )
        for campaign in program.campaigns.all():
            c_start = campaign.start_date or program.start_date
            c_end = campaign.end_date or program.end_date
            add(campaign, c_start, c_end, 1, "#3b82f6", reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
            for li in campaign.line_items.all():
                add(
                    li,
                    li.start_date or c_start,
                    li.end_date or c_end,
                    2,
                    "#93c5fd",
                    reverse("admin:campaigns_lineitem_change", args=[li.pk]),
                )
    previous = (first - dt.timedelta(days=1)).strftime("%Y-%m")
    following = (last + dt.timedelta(days=1)).strftime("%Y-%m")
    return {
        "first": first,
        "last": last,
        "label": first.strftime("%B %Y"),
        "previous": previous,
        "next": following,
        "rows": rows,
    }
