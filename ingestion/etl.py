"""The shared ETL of document 004 (module 10): parse -> validate -> stage -> find-or-create -> load.

Surfside, Vibe and Facebook files all go through `parse_metrics_file` and `load_metrics`; REDS
rolls its events up into the same staging table and loader (see `reds.py`).

The load is one transaction per run: staged rows, new hierarchy entries, the replaced daily
metrics, the quarantine and the run's counts commit together or not at all, so a worker killed
mid-run leaves nothing half-written and the rerun replaces the same keys exactly.
"""

from __future__ import annotations

import datetime as dt
import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import polars as pl
from django.db import connection

from campaigns.selectors import cpm_by_date
from p360.core import registry
from p360.core.intake.tables import (
    BIGINT_MAX,
    LINE,
    RAW,
    REASON,
    FileRejected,
    Table,
    combine_problems,
    date_value,
    map_columns,
    name_problem,
    number_problem,
    number_value,
    read_table,
)

KEY = ["date", "campaign", "strategy", "placement", "creative"]
METRICS = ["impressions", "clicks", "conversions", "conversion_revenue"]

# canonical field -> accepted headers (normalised: lower case, no currency suffix, "_" as space), by preference
SPECS: dict[str, dict[str, list[str]]] = {
    "surfside": {
        "date": ["date", "day", "report date"],
        "campaign": ["campaign", "campaign name"],
        "strategy": ["strategy", "strategy name"],
        "placement": ["placement", "placement name"],
        "creative": ["creative", "creative name"],
        "impressions": ["impressions", "imps", "impr"],
        "clicks": ["clicks"],
        "conversions": ["conversions", "convs"],
        "conversion_revenue": ["conversion revenue", "revenue", "conv revenue"],
    },
    "vibe": {
        "date": ["date", "day"],
        "campaign": ["campaign name", "campaign"],
        "strategy": ["strategy name", "strategy"],
        "placement": ["placement name", "placement"],
        "creative": ["creative name", "creative"],
        "impressions": ["impressions"],
        "clicks": ["clicks"],
        "conversions": ["conversions"],
        "conversion_revenue": ["revenue", "conversion revenue"],
    },
    "facebook": {
        "date": ["day", "reporting starts", "date"],
        "date_end": ["reporting ends"],
        "campaign": ["campaign name", "campaign"],
        "strategy": ["ad set name", "adset name", "ad set"],
        "placement": ["ad name", "ad"],
        "impressions": ["impressions"],
        "clicks": ["link clicks", "clicks (all)", "clicks"],
        "conversions": ["results", "conversions"],
        "conversion_revenue": [
            "purchases conversion value",
            "revenue",
            "conversion value",
            "purchase conversion value",
        ],
    },
}
OPTIONAL = {"facebook": frozenset({"date_end"})}
LABELS = {
    "date": "Date",
    "campaign": "Campaign",
    "strategy": "Strategy",
    "placement": "Placement",
    "creative": "Creative",
    "impressions": "Impressions",
    "clicks": "Clicks",
    "conversions": "Conversions",
    "conversion_revenue": "Revenue",
}
# How a re-run replaces earlier data: whole days of the source (complete daily reports), or only
# the keys present in the file (Facebook exports are partial: one ad account or campaign at a time).
REPLACE_SCOPE = {"surfside": "date", "vibe": "date", "facebook": "key", "reds": "date"}


@dataclass
class Parsed:
    valid: pl.DataFrame  # LINE + KEY + METRICS (+ media_cost for REDS roll-ups)
    bad: list[tuple[int, str, str]]
    rows_read: int
    notes: list[str]


def parse_metrics_file(source: str, path: Path, name: str) -> Parsed:
    table = read_table(path, name)
    return validate_metrics(source, table, name)


def validate_metrics(source: str, table: Table, name: str) -> Parsed:
    spec = SPECS[source]
    mapping = map_columns(table.columns, spec, optional=OPTIONAL.get(source, frozenset()), file_name=name)
    if source == "facebook":
        mapping["creative"] = mapping["placement"]  # Ad name -> placement AND creative (A.2)
    labels = {field: f"{LABELS.get(field, field)} ({mapping[field]})" for field in mapping}
    # Dates repeat (one or a few per file): parse each distinct text once, then join.
    date_col = mapping["date"]
    distinct = table.df.select(pl.col(date_col).unique()).with_columns(date_value(date_col).alias("__date"))
    table = Table(
        df=table.df.join(distinct, on=date_col, how="left", maintain_order="left", nulls_equal=True),
        columns=table.columns,
        bad=table.bad,
        notes=table.notes,
    )
    problems = [
        pl.when(pl.col("__date").is_null())
        .then(
            pl.format(
                f"{labels['date']} '{{}}' is not a date (use YYYY-MM-DD)",
                pl.col(date_col).fill_null("").str.slice(0, 40),
            )
        )
        .otherwise(None)
    ]
    problems += [name_problem(mapping[f], labels[f]) for f in ("campaign", "strategy", "placement", "creative")]
    problems += [number_problem(mapping[f], labels[f], whole=True) for f in ("impressions", "clicks", "conversions")]
    problems.append(number_problem(mapping["conversion_revenue"], labels["conversion_revenue"], whole=False))
    if "date_end" in mapping:
        end = date_value(mapping["date_end"])
        problems.append(
            pl.when(end.is_not_null() & pl.col("__date").is_not_null() & (end != pl.col("__date")))
            .then(pl.lit("the row covers more than one day; export with a daily breakdown (Day)"))
            .otherwise(None)
        )
    df = table.df.with_columns(combine_problems(problems).alias(REASON))
    bad_df = df.filter(pl.col(REASON).is_not_null())
    bad = list(table.bad) + list(
        zip(bad_df[LINE].to_list(), bad_df[REASON].to_list(), bad_df[RAW].to_list(), strict=True)
    )
    good = df.filter(pl.col(REASON).is_null()).select(
        pl.col(LINE),
        pl.col("__date").alias("date"),
        *[pl.col(mapping[f]).str.strip_chars().alias(f) for f in ("campaign", "strategy", "placement", "creative")],
        *[number_value(mapping[f], whole=True).alias(f) for f in ("impressions", "clicks", "conversions")],
        number_value(mapping["conversion_revenue"], whole=False).alias("conversion_revenue"),
    )
    bad.sort(key=lambda item: item[0])
    return Parsed(valid=good, bad=bad, rows_read=table.rows_read, notes=table.notes)


def restrict_to_date(parsed: Parsed, expected: dt.date | None) -> None:
    """Quarantine rows of other days when the run is for one day; refuse a file wholly for another day."""
    if expected is None or parsed.valid.is_empty():
        return
    other = parsed.valid.filter(pl.col("date") != expected)
    if other.is_empty():
        return
    if other.height == parsed.valid.height and not parsed.bad:
        days = sorted({d.isoformat() for d in other["date"].unique().to_list()})
        raise FileRejected(f"the file is for {', '.join(days[:5])}, not {expected.isoformat()}")
    parsed.bad.extend(
        (line, f"date {day.isoformat()} is not the run's date {expected.isoformat()}", "")
        for line, day in zip(other[LINE].to_list(), other["date"].to_list(), strict=True)
    )
    parsed.bad.sort(key=lambda item: item[0])
    parsed.valid = parsed.valid.filter(pl.col("date") == expected)


def quarantine_missing_cpm(parsed: Parsed) -> dict[dt.date, Decimal]:
    """Rows on a day with no CPM in force cannot get a spend: quarantine them with the fix."""
    if parsed.valid.is_empty():
        return {}
    days = sorted(parsed.valid["date"].unique().to_list())
    rates = cpm_by_date(days)
    missing = [day for day in days if day not in rates]
    if missing:
        lost = parsed.valid.filter(pl.col("date").is_in(missing))
        parsed.bad.extend(
            (line, f"no CPM rate in force on {day.isoformat()}; set one with `set_cpm` or in the admin", "")
            for line, day in zip(lost[LINE].to_list(), lost["date"].to_list(), strict=True)
        )
        parsed.bad.sort(key=lambda item: item[0])
        parsed.valid = parsed.valid.filter(~pl.col("date").is_in(missing))
    return rates


# Column bounds of campaigns_dailymetric (numeric(p, s): values below 10^(p - s)); counts are bigint.
_BOUNDS = {"spend": 10**15, "ctr": 10**6, "cpc": 10**14, "cpa": 10**14, "roas": 10**14, "conversion_revenue": 10**14}


def merge_duplicate_keys(
    valid: pl.DataFrame, rates: dict[dt.date, Decimal] | None = None
) -> tuple[pl.DataFrame, int, list[tuple[int, str, str]]]:
    """Rows with the same (date, campaign, strategy, placement, creative) are summed (a report split
    by a dimension we do not keep, such as device); returns the merged frame, rows merged away, and the
    rows quarantined because a sum, or a figure derived from it with the day's CPM, does not fit its column.

    Sums are taken in 128 bits (polars' Int64 sum wraps: two rows of 9223372036854775807 impressions gave
    -2), so nothing wrapped is ever stored; a group that overflows is quarantined whole (issue 15)."""
    extra = [c for c in ("media_cost",) if c in valid.columns]
    counts = ("impressions", "clicks", "conversions")
    merged = valid.group_by(KEY, maintain_order=True).agg(
        pl.col(LINE).min(),
        pl.col(LINE).alias("__lines"),
        *[pl.col(m).cast(pl.Int128).sum() for m in counts],
        pl.col("conversion_revenue").cast(pl.Decimal(38, 4)).sum(),
        *[pl.col(m).sum() for m in extra],
        pl.len().alias("rows"),
    )
    duplicates = valid.height - merged.height
    impressions, clicks, conversions = (pl.col(m).cast(pl.Float64) for m in counts)
    revenue = pl.col("conversion_revenue").cast(pl.Float64)
    problems = [
        pl.when(pl.col(m) > BIGINT_MAX).then(pl.lit(f"{m} summed over rows with the same day and names is too large"))
        for m in counts
    ]
    problems.append(
        pl.when(pl.col("conversion_revenue") >= pl.lit(_BOUNDS["conversion_revenue"]).cast(pl.Decimal(38, 4))).then(
            pl.lit("conversion revenue summed over rows with the same day and names is too large")
        )
    )
    if rates:
        days = list(rates)
        cpm = pl.col("date").replace_strict(
            days, [float(rates[d]) for d in days], default=None, return_dtype=pl.Float64
        )
        spend = impressions * cpm / 1000
        derived = {
            "spend": spend,
            "ctr": pl.when(impressions > 0).then(clicks * 100 / impressions),
            "cpc": pl.when(clicks > 0).then(spend / clicks),
            "cpa": pl.when(conversions > 0).then(spend / conversions),
            "roas": pl.when(spend > 0).then(revenue * 100 / spend),
        }
        problems += [
            pl.when(value >= _BOUNDS[name]).then(
                pl.lit(f"the {name.upper()} derived from this row is too large to store")
            )
            for name, value in derived.items()
        ]
    merged = merged.with_columns(
        pl.concat_str([p.otherwise(None) for p in problems], separator="; ", ignore_nulls=True).alias(REASON)
    )
    merged = merged.with_columns(pl.when(pl.col(REASON) != "").then(pl.col(REASON)).alias(REASON))
    overflow = merged.filter(pl.col(REASON).is_not_null())
    bad: list[tuple[int, str, str]] = []
    for lines, reason in overflow.select("__lines", REASON).iter_rows():
        lines = sorted(lines)
        shown = f" ({len(lines)} rows: lines {', '.join(map(str, lines[:10]))}{'…' if len(lines) > 10 else ''})"
        bad += [(line, reason + (shown if len(lines) > 1 else ""), "") for line in lines]
    good = (
        merged.filter(pl.col(REASON).is_null())
        .drop("__lines", REASON)
        .with_columns(
            *[pl.col(m).cast(pl.Int64) for m in counts],
            pl.col("conversion_revenue").cast(pl.Decimal(18, 4)),
        )
    )
    return good, duplicates, sorted(bad)


# --- Loading (inside the caller's transaction, in the org's schema) --------------------------------

STAGE = "ingestion_store_stagedmetric"


def lock_source(source: str) -> None:
    """One load at a time per org and source (another run waits, then replaces after it)."""
    key = zlib.crc32(f"p360:ingest:{connection.schema_name}:{source}".encode())  # type: ignore[attr-defined]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def resolve_campaigns(names: list[str], source: str, currency: str) -> dict[str, int]:
    """Batched find-or-create of the run's campaigns (few per file): {name: id}."""
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO campaigns_campaign (name, source, external_id, status, budget, currency, created_at, updated_at)
               SELECT name, %s, '', 'active', 0, %s, now(), now() FROM unnest(%s::text[]) AS name
               ON CONFLICT (name, source) DO NOTHING""",
            [source, currency, names],
        )
        cursor.execute("SELECT name, id FROM campaigns_campaign WHERE source = %s AND name = ANY(%s)", [source, names])
        return dict(cursor.fetchall())


def stage_rows(
    run_id: int,
    merged: pl.DataFrame,
    source: str | None = None,
    currency: str = "USD",
    rates: dict[dt.date, Decimal] | None = None,
) -> int:
    if source is not None and "campaign_ref" not in merged.columns and not merged.is_empty():
        ids = resolve_campaigns(sorted(merged["campaign"].unique().to_list()), source, currency)
        merged = merged.with_columns(
            pl.col("campaign").replace_strict(ids, return_dtype=pl.Int64).alias("campaign_ref")
        )
    if rates is not None:
        days = list(rates)
        merged = merged.with_columns(
            pl.col("date")
            .replace_strict(days, [str(rates[d]) for d in days], default=None, return_dtype=pl.String)
            .alias("cpm")
        )
    frame = merged.select(
        pl.lit(run_id).alias("run_id"),
        pl.col(LINE).alias("line_no"),
        *KEY,
        *METRICS,
        pl.col("rows"),
        (pl.col("media_cost") if "media_cost" in merged.columns else pl.lit(None, pl.Decimal(18, 6))).alias(
            "media_cost"
        ),
        (pl.col("campaign_ref") if "campaign_ref" in merged.columns else pl.lit(None, pl.Int64)).alias("campaign_ref"),
        (pl.col("cpm") if "cpm" in merged.columns else pl.lit(None, pl.String)).alias("cpm"),
    )
    buffer = io.BytesIO()
    frame.write_csv(buffer, include_header=False)
    columns = ", ".join(frame.columns)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {STAGE} WHERE run_id = %s", [run_id])
        with cursor.copy(f"COPY {STAGE} ({columns}) FROM STDIN (FORMAT csv)") as copy:  # type: ignore[attr-defined]
            view = buffer.getbuffer()
            for start in range(0, len(view), 1 << 20):
                copy.write(view[start : start + (1 << 20)])
    return frame.height


def _resolve_hierarchy(cursor: object, run_id: int, source: str, currency: str) -> None:
    """Batched find-or-create, one statement per level (ON CONFLICT keeps concurrent loads safe)."""
    execute: Callable[..., object] = cursor.execute  # type: ignore[attr-defined]
    execute(
        f"""INSERT INTO campaigns_campaign (name, source, external_id, status, budget, currency, created_at, updated_at)
            SELECT DISTINCT s.campaign, %s, '', 'active', 0, %s, now(), now() FROM {STAGE} s
            WHERE s.run_id = %s AND s.campaign_ref IS NULL
            ON CONFLICT (name, source) DO NOTHING""",
        [source, currency, run_id],
    )
    execute(
        f"""UPDATE {STAGE} s SET campaign_ref = c.id FROM campaigns_campaign c
            WHERE s.run_id = %s AND s.campaign_ref IS NULL AND c.name = s.campaign AND c.source = %s""",
        [run_id, source],
    )
    execute(
        f"""INSERT INTO campaigns_strategy (campaign_id, name, created_at)
            SELECT DISTINCT s.campaign_ref, s.strategy, now() FROM {STAGE} s WHERE s.run_id = %s
            ON CONFLICT (campaign_id, name) DO NOTHING""",
        [run_id],
    )
    execute(
        f"""INSERT INTO campaigns_placement (strategy_id, name, created_at)
            SELECT DISTINCT st.id, s.placement, now() FROM {STAGE} s
            JOIN campaigns_strategy st ON st.campaign_id = s.campaign_ref AND st.name = s.strategy
            WHERE s.run_id = %s
            ON CONFLICT (strategy_id, name) DO NOTHING""",
        [run_id],
    )
    execute(
        f"""INSERT INTO campaigns_creative (placement_id, name, preview_url, created_at)
            SELECT DISTINCT p.id, s.creative, '', now() FROM {STAGE} s
            JOIN campaigns_strategy st ON st.campaign_id = s.campaign_ref AND st.name = s.strategy
            JOIN campaigns_placement p ON p.strategy_id = st.id AND p.name = s.placement
            WHERE s.run_id = %s
            ON CONFLICT (placement_id, name) DO NOTHING""",
        [run_id],
    )


_RESOLVED = f"""
    SELECT s.*, st.id AS strategy_id, p.id AS placement_id, cr.id AS creative_id FROM {STAGE} s
    JOIN campaigns_strategy st ON st.campaign_id = s.campaign_ref AND st.name = s.strategy
    JOIN campaigns_placement p ON p.strategy_id = st.id AND p.name = s.placement
    JOIN campaigns_creative cr ON cr.placement_id = p.id AND cr.name = s.creative
    WHERE s.run_id = %(run)s
"""


def load_staged(*, run_id: int, source: str, currency: str, dates: list[dt.date]) -> tuple[int, int]:
    """Resolve the hierarchy, replace the source's metrics (by day or by key) and insert the staged
    rows with CPM-based spend and the A.1 derived metrics. Returns (written, replaced)."""
    with connection.cursor() as cursor:
        _resolve_hierarchy(cursor, run_id, source, currency)
        if REPLACE_SCOPE[source] == "date":
            cursor.execute(
                "DELETE FROM campaigns_dailymetric WHERE source = %s AND date = ANY(%s)", [source, list(dates)]
            )
        else:
            cursor.execute(
                f"""DELETE FROM campaigns_dailymetric d USING ({_RESOLVED}) k
                    WHERE d.source = %(source)s AND d.date = k.date AND d.creative_id = k.creative_id""",
                {"run": run_id, "source": source},
            )
        replaced = cursor.rowcount
        # spend = impressions / 1000 x the CPM in force that day (exact); CTR 6, CPC/CPA/ROAS 4 places. A ratio
        # that would not fit its column is null (metric files are quarantined before this; REDS roll-ups are
        # counted in SQL): never an overflow error, never a wrapped value (issue 15).
        cursor.execute(
            f"""INSERT INTO campaigns_dailymetric (date, campaign_id, strategy_id, placement_id, creative_id, source,
                    impressions, clicks, conversions, conversion_revenue, cpm, spend, media_cost, ctr, cpc, cpa, roas,
                    run_id, loaded_at)
                SELECT k.date, k.campaign_ref, k.strategy_id, k.placement_id, k.creative_id, %(source)s,
                    k.impressions, k.clicks, k.conversions, k.conversion_revenue, k.cpm, k.spend, k.media_cost,
                    CASE WHEN k.impressions > 0 AND k.clicks::numeric * 100 / k.impressions < 1e6
                        THEN round(k.clicks::numeric * 100 / k.impressions, 6) END,
                    CASE WHEN k.clicks > 0 AND k.spend / k.clicks < 1e14 THEN round(k.spend / k.clicks, 4) END,
                    CASE WHEN k.conversions > 0 AND k.spend / k.conversions < 1e14
                        THEN round(k.spend / k.conversions, 4) END,
                    CASE WHEN k.spend > 0 AND k.conversion_revenue * 100 / k.spend < 1e14
                        THEN round(k.conversion_revenue * 100 / k.spend, 4) END,
                    %(run)s, now()
                FROM (SELECT x.*, x.impressions::numeric * x.cpm / 1000 AS spend FROM ({_RESOLVED}) x) k
                WHERE k.cpm IS NOT NULL""",
            {"run": run_id, "source": source},
        )
        written = cursor.rowcount
        cursor.execute(f"DELETE FROM {STAGE} WHERE run_id = %s", [run_id])
    # Listeners (reporting's rollup) rewrite what they derive from these days, in this transaction.
    registry.call_hooks("metrics_loaded", dates)
    return written, replaced


def write_quarantine(run_id: int, bad: list[tuple[int, str, str]], owners: dict[int, str] | None = None) -> int:
    """COPY the bad rows (line, reason, raw) into the public quarantine table.

    `owners` (REDS) maps a line to the organisation whose advertiser id it carries, so each org admin
    shows only its own quarantined lines of a multi-organisation file."""
    if not bad:
        return 0
    owners = owners or {}
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM public.ingestion_quarantinedrow WHERE run_id = %s", [run_id])
        with cursor.copy(  # type: ignore[attr-defined]
            "COPY public.ingestion_quarantinedrow (run_id, line_no, reason, raw, org_slug) FROM STDIN"
        ) as copy:
            for line, reason, raw in bad:
                copy.write_row((run_id, line, reason[:2000], (raw or "")[:4000], owners.get(line, "")))
    return len(bad)
