"""Reads for the reports: dashboard figures (from the daily rollup), tables, summaries, data freshness.

Every figure goes through `campaigns.selectors.derive` (document 004, appendix A.1: CTR 6 places,
CPC/CPA/ROAS 4, spend 2, half-up on the exact sums), so the dashboard, the summaries and the
metrics API print the same numbers for the same days.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from campaigns.selectors import PLACES, derive, metrics_report
from ingestion.models import RunStatus
from ingestion.selectors import runs_for_org
from reporting.periods import period_end, previous_range, previous_start

METRICS = ["impressions", "clicks", "conversions", "conversion_revenue", "spend", "ctr", "cpc", "cpa", "roas"]
LEVELS = ("campaign", "strategy", "placement", "creative")
SORTS = ("name", *METRICS)


@dataclass(frozen=True)
class Filters:
    """What narrows every dashboard query: sources, campaigns and programs (empty = all). A program narrows to its
    campaigns; an id that is no program of this org (each org's ids live in its own schema) gives nothing."""

    sources: tuple[str, ...] = ()
    campaign_ids: tuple[int, ...] = ()
    program_ids: tuple[int, ...] = ()

    def sql(self, alias: str) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if self.sources:
            clauses.append(f"{alias}.source = ANY(%s)")
            params.append(list(self.sources))
        if self.campaign_ids:
            clauses.append(f"{alias}.campaign_id = ANY(%s)")
            params.append(list(self.campaign_ids))
        if self.program_ids:
            clauses.append(f"{alias}.campaign_id IN (SELECT id FROM campaigns_campaign WHERE program_id = ANY(%s))")
            params.append(list(self.program_ids))
        return "".join(f" AND {c}" for c in clauses), params


_SUM_COLUMNS = (
    "sum(x.impressions) AS impressions, sum(x.clicks) AS clicks, sum(x.conversions) AS conversions, "
    "sum(x.conversion_revenue) AS revenue, sum(x.spend) AS spend_exact"
)


def _figures(impressions: Any, clicks: Any, conversions: Any, revenue: Any, spend: Any) -> dict[str, Any]:
    return derive(
        int(impressions or 0), int(clicks or 0), int(conversions or 0), Decimal(revenue or 0), Decimal(spend or 0)
    )


def _fetch(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# --- deltas ------------------------------------------------------------------------------------------


def _number(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def deltas(current: dict[str, Any], previous: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per metric: absolute change (same precision as the figure) and percent change (2 places);
    either is null when a side is null, and the percent is null when the previous value is zero."""
    out: dict[str, dict[str, Any]] = {}
    for metric in METRICS:
        cur, prev = _number(current.get(metric)), _number(previous.get(metric))
        if cur is None or prev is None:
            out[metric] = {"abs": None, "pct": None}
            continue
        diff = cur - prev
        places = PLACES.get(metric)
        absolute: Any = int(diff) if places is None else str(diff.quantize(Decimal(1).scaleb(-places)))
        pct = None if prev == 0 else str((diff * 100 / prev).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
        out[metric] = {"abs": absolute, "pct": pct}
    return out


# --- dashboard (rollup) --------------------------------------------------------------------------------


def totals(start: dt.date, end: dt.date, filters: Filters = Filters()) -> dict[str, Any]:
    where, params = filters.sql("x")
    row = _fetch(
        f"SELECT {_SUM_COLUMNS}, count(*) FROM reporting_dailyrollup x WHERE x.date BETWEEN %s AND %s{where}",
        [start, end, *params],
    )[0]
    return {**_figures(*row[:5]), "has_data": bool(row[5])}


def kpis(start: dt.date, end: dt.date, filters: Filters = Filters()) -> dict[str, Any]:
    """Totals of the range and of the equal-length range before it, with deltas."""
    prev_start, prev_end = previous_range(start, end)
    current = totals(start, end, filters)
    previous = totals(prev_start, prev_end, filters)
    return {
        "current": current,
        "previous": previous,
        "previous_start": prev_start.isoformat(),
        "previous_end": prev_end.isoformat(),
        "deltas": deltas(current, previous),
    }


def trend(start: dt.date, end: dt.date, filters: Filters = Filters()) -> list[dict[str, Any]]:
    """One point per day of the range (days without data are zeros, so the chart's axis is honest)."""
    where, params = filters.sql("x")
    rows = _fetch(
        f"""SELECT x.date, {_SUM_COLUMNS} FROM reporting_dailyrollup x
            WHERE x.date BETWEEN %s AND %s{where} GROUP BY x.date""",
        [start, end, *params],
    )
    by_day = {row[0]: row[1:] for row in rows}
    points = []
    for n in range((end - start).days + 1):
        day = start + dt.timedelta(days=n)
        points.append({"date": day.isoformat(), **_figures(*by_day.get(day, (0, 0, 0, 0, 0)))})
    return points


def by_source(start: dt.date, end: dt.date, filters: Filters = Filters()) -> list[dict[str, Any]]:
    where, params = filters.sql("x")
    rows = _fetch(
        f"""SELECT x.source, {_SUM_COLUMNS} FROM reporting_dailyrollup x
            WHERE x.date BETWEEN %s AND %s{where} GROUP BY x.source ORDER BY sum(x.spend) DESC, x.source""",
        [start, end, *params],
    )
    return [{"source": row[0], **_figures(*row[1:])} for row in rows]


# --- tables ------------------------------------------------------------------------------------------

# level -> (fact table, id columns with their name joins)
_LEVEL_SQL = {
    "campaign": ("reporting_dailyrollup", ["campaign"]),
    "strategy": ("reporting_dailyrollup", ["campaign", "strategy"]),
    "placement": ("campaigns_dailymetric", ["campaign", "strategy", "placement"]),
    "creative": ("campaigns_dailymetric", ["campaign", "strategy", "placement", "creative"]),
}
_NAME_TABLE = {
    "campaign": "campaigns_campaign",
    "strategy": "campaigns_strategy",
    "placement": "campaigns_placement",
    "creative": "campaigns_creative",
}
# Derived metrics computed in SQL only to sort by them (the figures shown come from `derive`).
_SORT_SQL = {
    "name": "g.{level}_name",
    "impressions": "g.impressions",
    "clicks": "g.clicks",
    "conversions": "g.conversions",
    "conversion_revenue": "g.revenue",
    "spend": "g.spend_exact",
    "ctr": "g.clicks::numeric / NULLIF(g.impressions, 0)",
    "cpc": "g.spend_exact / NULLIF(g.clicks, 0)",
    "cpa": "g.spend_exact / NULLIF(g.conversions, 0)",
    "roas": "g.revenue / NULLIF(g.spend_exact, 0)",
}


@dataclass
class TablePage:
    level: str
    rows: list[dict[str, Any]]
    total: int
    page: int
    per_page: int
    sort: str
    desc: bool
    query: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def table(
    level: str,
    start: dt.date,
    end: dt.date,
    filters: Filters = Filters(),
    *,
    query: str = "",
    sort: str = "spend",
    desc: bool = True,
    page: int = 1,
    per_page: int = 25,
) -> TablePage:
    """One page of a level's rows (campaign and strategy from the rollup, placement and creative
    from the daily rows), searched by name (any level of the row's path), sorted, with the row count."""
    if level not in _LEVEL_SQL:
        raise ValueError(f"unknown table {level!r}")
    if sort not in _SORT_SQL:
        raise ValueError(f"unknown sort {sort!r}")
    fact, path = _LEVEL_SQL[level]
    where, params = filters.sql("x")
    ids = ", ".join(f"x.{name}_id" for name in path)
    # Aggregate on ids first (a hash aggregate over integers), join the names to the groups after:
    # joining millions of daily rows to four name tables before grouping costs far more.
    joins = " ".join(f"JOIN {_NAME_TABLE[name]} {name[:2]}_t ON {name[:2]}_t.id = a.{name}_id" for name in path)
    names = ", ".join(f"{name[:2]}_t.name AS {name}_name" for name in path)
    search = ""
    search_params: list[Any] = []
    if query:
        search = " WHERE (" + " OR ".join(f"{name[:2]}_t.name ILIKE %s" for name in path) + ")"
        like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        search_params = [like] * len(path)
    inner = f"""
        SELECT a.*, {names}, ca_t.source AS campaign_source FROM (
            SELECT {ids}, {_SUM_COLUMNS}
            FROM {fact} x
            WHERE x.date BETWEEN %s AND %s{where}
            GROUP BY {ids}
        ) a {joins}{search}"""
    inner_params = [start, end, *params, *search_params]
    order = _SORT_SQL[sort].format(level=level)
    direction = "DESC" if desc else "ASC"
    page = max(1, page)
    width = len(path)
    id_cols = ", ".join(f"g.{name}_id" for name in path)
    name_cols = ", ".join(f"g.{name}_name" for name in path)
    sql = f"""SELECT {id_cols}, {name_cols}, g.campaign_source, g.impressions, g.clicks, g.conversions, g.revenue,
                  g.spend_exact, count(*) OVER ()
              FROM ({inner}) g
              ORDER BY {order} {direction} NULLS LAST, g.{level}_name, g.{level}_id
              LIMIT %s OFFSET %s"""
    with transaction.atomic(), connection.cursor() as cursor:
        if fact == "campaigns_dailymetric":
            # Up to one group per creative: enough memory to hash-aggregate instead of sorting on disk.
            cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute(sql, [*inner_params, per_page, (page - 1) * per_page])
        rows = cursor.fetchall()
    out = []
    for row in rows:
        item: dict[str, Any] = {}
        for index, name in enumerate(path):
            item[f"{name}_id"] = row[index]
            item[name] = row[width + index]
        item["campaign_source"] = row[2 * width]
        item.update(_figures(*row[2 * width + 1 : 2 * width + 6]))
        out.append(item)
    if rows:
        total = int(rows[0][-1])
    else:  # an empty page: past the end, or nothing at all; the pager needs the real count
        total = int(_fetch(f"SELECT count(*) FROM ({inner}) g", inner_params)[0][0]) if page > 1 else 0
    return TablePage(level, out, total, page, per_page, sort, desc, query)


def dashboard_data(start: dt.date, end: dt.date, filters: Filters = Filters()) -> dict[str, Any]:
    """What the dashboard page draws besides its tables: KPIs with deltas, daily trend, sources.

    One query over the rollup for both ranges (grouped by day and source); the totals, previous
    totals, trend and source breakdown are sums of its rows. Same figures as `kpis`/`trend`/`by_source`.
    """
    prev_start, prev_end = previous_range(start, end)
    where, params = filters.sql("x")
    rows = _fetch(
        f"""SELECT x.date, x.source, {_SUM_COLUMNS} FROM reporting_dailyrollup x
            WHERE x.date BETWEEN %s AND %s{where} GROUP BY x.date, x.source""",
        [prev_start, end, *params],
    )
    zero = (0, 0, 0, Decimal(0), Decimal(0))

    def add(acc: tuple[Any, ...], row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(a + (b or 0) for a, b in zip(acc, row, strict=True))

    current, previous, days_seen = zero, zero, 0
    by_day: dict[dt.date, tuple[Any, ...]] = {}
    by_src: dict[str, tuple[Any, ...]] = {}
    prev_seen = 0
    for day, source, *sums in rows:
        if day >= start:
            current = add(current, tuple(sums))
            by_day[day] = add(by_day.get(day, zero), tuple(sums))
            by_src[source] = add(by_src.get(source, zero), tuple(sums))
            days_seen += 1
        else:
            previous = add(previous, tuple(sums))
            prev_seen += 1
    cur = {**_figures(*current), "has_data": bool(days_seen)}
    prev = {**_figures(*previous), "has_data": bool(prev_seen)}
    trend_points = [
        {
            "date": (start + dt.timedelta(days=n)).isoformat(),
            **_figures(*by_day.get(start + dt.timedelta(days=n), zero)),
        }
        for n in range((end - start).days + 1)
    ]
    sources = [
        {"source": key, **_figures(*value)}
        for key, value in sorted(by_src.items(), key=lambda item: (-item[1][4], item[0]))
    ]
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "kpis": {
            "current": cur,
            "previous": prev,
            "previous_start": prev_start.isoformat(),
            "previous_end": prev_end.isoformat(),
            "deltas": deltas(cur, prev),
        },
        "trend": trend_points,
        "sources": sources,
    }


def data_complete_up_to(org: Any) -> list[dict[str, Any]]:
    """Per source: the newest day a successful ingestion run loaded (public schema: runs span orgs)."""

    latest: dict[str, tuple[str, dt.date]] = {}
    runs = runs_for_org(org).filter(status=RunStatus.SUCCEEDED).exclude(dates=[]).order_by("-created_at")
    for run in runs.only("source", "dates")[:500]:
        newest = max(dt.date.fromisoformat(d) for d in run.dates)
        if run.source not in latest or newest > latest[run.source][1]:
            latest[run.source] = (run.get_source_display(), newest)
    return [{"source": key, "label": label, "day": day} for key, (label, day) in sorted(latest.items())]


# --- summaries (daily rows, like the metrics API) ---------------------------------------------------


def _thresholds() -> dict[str, str]:
    return {
        "max_ctr": str(Decimal(settings.P360_UNDERPERFORMER_MAX_CTR)),
        "min_spend": str(Decimal(settings.P360_UNDERPERFORMER_MIN_SPEND)),
    }


def _top(rows: list[dict[str, Any]], keep: list[str], n: int) -> dict[str, list[dict[str, Any]]]:
    def slim(row: dict[str, Any]) -> dict[str, Any]:
        return {**{k: row[k] for k in keep}, **{m: row[m] for m in METRICS}}

    by_conv = sorted(rows, key=lambda r: (-r["conversions"], -Decimal(r["conversion_revenue"])))
    by_rev = sorted(rows, key=lambda r: (-Decimal(r["conversion_revenue"]), -r["conversions"]))
    return {
        "by_conversions": [slim(r) for r in by_conv[:n] if r["conversions"] > 0],
        "by_revenue": [slim(r) for r in by_rev[:n] if Decimal(r["conversion_revenue"]) > 0],
    }


def compute_summary(period: str, start: dt.date) -> dict[str, Any]:
    """A weekly or monthly summary computed from the daily rows (not stored); `daily_rows` 0 = no data."""
    end = period_end(period, start)
    prev_start = previous_start(period, start)
    prev_end = period_end(period, prev_start)
    n = settings.P360_SUMMARY_TOP_N
    campaigns = metrics_report(start, end, ["campaign"])
    creatives = metrics_report(start, end, ["creative"])
    previous = metrics_report(prev_start, prev_end, [])["totals"]
    current = campaigns["totals"]
    thresholds = _thresholds()
    max_ctr, min_spend = Decimal(thresholds["max_ctr"]), Decimal(thresholds["min_spend"])
    creative_keep = ["campaign_id", "campaign", "strategy", "placement", "creative_id", "creative"]
    under = [
        {**{k: row[k] for k in creative_keep}, **{m: row[m] for m in METRICS}}
        for row in creatives["rows"]
        if row["ctr"] is not None and Decimal(row["ctr"]) < max_ctr and Decimal(row["spend"]) >= min_spend
    ]
    under.sort(key=lambda r: -Decimal(r["spend"]))
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM campaigns_dailymetric WHERE date BETWEEN %s AND %s", [start, end])
        daily_rows = int(cursor.fetchone()[0])
    return {
        "period": period,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "previous_start": prev_start.isoformat(),
        "previous_end": prev_end.isoformat(),
        "totals": current,
        "previous_totals": previous,
        "deltas": deltas(current, previous),
        "top_campaigns": _top(campaigns["rows"], ["campaign_id", "campaign", "campaign_source"], n),
        "top_creatives": _top(creatives["rows"], creative_keep, n),
        "underperformers": under[: 2 * n],
        "thresholds": thresholds,
        "daily_rows": daily_rows,
        "by_program": by_program(start, end),  # orchestration (issue 14)
    }


def by_program(start: dt.date, end: dt.date, filters: Filters = Filters()) -> list[dict[str, Any]]:
    """Spend and results per program over the range (orchestration, issue 14); campaigns without a program
    (ingested, not yet assigned) form the row whose `program_id` is null. The metrics API's `group_by=program`
    (same selector), so the dashboard, its exports and the API print the same figures."""
    keep = ["program_id", "program", *METRICS]
    report = metrics_report(
        start,
        end,
        ["program"],
        sources=list(filters.sources) or None,
        campaign_ids=list(filters.campaign_ids) or None,
        program_ids=list(filters.program_ids) or None,
    )
    return [{k: row[k] for k in keep if k in row} for row in report["rows"]]


def summary_body(period: str, start: dt.date) -> dict[str, Any]:
    """The API body: the stored summary when there is one, else computed now ("stored": false)."""
    from reporting.models import Summary

    stored = Summary.objects.filter(period=period, start=start).first()
    if stored is not None:
        return stored_body(stored)
    return {**compute_summary(period, start), "stored": False, "generated_at": None}


def stored_body(summary: Any) -> dict[str, Any]:
    prev_start = previous_start(summary.period, summary.start)
    return {
        "period": summary.period,
        "start": summary.start.isoformat(),
        "end": summary.end.isoformat(),
        "previous_start": prev_start.isoformat(),
        "previous_end": period_end(summary.period, prev_start).isoformat(),
        "totals": summary.totals,
        "previous_totals": summary.previous,
        "deltas": summary.deltas,
        "top_campaigns": summary.top_campaigns,
        "top_creatives": summary.top_creatives,
        "underperformers": summary.underperformers,
        "thresholds": summary.thresholds,
        "daily_rows": summary.daily_rows,
        # orchestration (issue 14): read live (programs are assigned after a summary is stored)
        "by_program": by_program(summary.start, summary.end),
        "stored": True,
        "generated_at": summary.generated_at.isoformat(),
    }
