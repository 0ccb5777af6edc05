"""Composition of a set of people (a Boolean mask over the cache's universe): counts per value of a field.

The bands (employees, revenue) are defined once here; `band_sql` states the same rule in SQL so tests (and
anyone reading the database directly) get the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from audiences import cache

# (label, low, high) inclusive; None = open. A value below the first band (0 or negative) falls in the first.
EMPLOYEE_BANDS: tuple[tuple[str, int | None, int | None], ...] = (
    ("1-10", None, 10),
    ("11-50", 11, 50),
    ("51-200", 51, 200),
    ("201-500", 201, 500),
    ("501-1,000", 501, 1000),
    ("1,001-5,000", 1001, 5000),
    ("5,001-10,000", 5001, 10000),
    ("10,001+", 10001, None),
)
REVENUE_BANDS: tuple[tuple[str, int | None, int | None], ...] = (
    ("under $1M", None, 999_999),
    ("$1M-$10M", 1_000_000, 9_999_999),
    ("$10M-$50M", 10_000_000, 49_999_999),
    ("$50M-$100M", 50_000_000, 99_999_999),
    ("$100M-$500M", 100_000_000, 499_999_999),
    ("$500M-$1B", 500_000_000, 999_999_999),
    ("$1B+", 1_000_000_000, None),
)
SURGE_FIELD = "bombora_surging"


@dataclass(frozen=True)
class Breakdown:
    field: str
    label: str
    source: str  # the cache column read (or "bombora")
    bands: tuple[tuple[str, int | None, int | None], ...] | None = None
    limit: int = 50  # values shown in charts and the API (the CSV carries them all)


BREAKDOWNS: tuple[Breakdown, ...] = (
    Breakdown("industry", "Industry", "industry"),
    Breakdown("country", "Country", "country"),
    Breakdown("employee_band", "Employees", "employee_count", EMPLOYEE_BANDS),
    Breakdown("revenue_band", "Revenue", "revenue", REVENUE_BANDS),
    Breakdown("job_title", "Job title", "job_title", limit=25),
    Breakdown("domain", "Top domains", "domain", limit=20),
    Breakdown(SURGE_FIELD, "Bombora topics surging", "bombora", limit=20),
)
BREAKDOWNS_BY_FIELD = {b.field: b for b in BREAKDOWNS}


def band_sql(column: str, bands: tuple[tuple[str, int | None, int | None], ...]) -> str:
    """The band of `column` as a SQL CASE (NULL when the value is missing): the same rule as `_band_expr`."""
    parts = []
    for label, _low, high in bands:
        safe = label.replace("'", "''")
        parts.append(f"WHEN {column} <= {high} THEN '{safe}'" if high is not None else f"ELSE '{safe}'")
    return f"(CASE WHEN {column} IS NULL THEN NULL {' '.join(parts)} END)"


def _band_expr(column: str, bands: tuple[tuple[str, int | None, int | None], ...]) -> pl.Expr:
    expr: Any = pl.when(pl.col(column).is_null()).then(pl.lit(None, dtype=pl.String))
    for label, _low, high in bands:
        expr = (
            expr.when(pl.col(column) <= high).then(pl.lit(label)) if high is not None else expr.otherwise(pl.lit(label))
        )
    return expr


def _sorted(counts: dict[Any, int], *, order: list[str] | None = None) -> list[dict[str, Any]]:
    """Non-null values by count (desc) then value, or in band order; the missing value (null) last."""
    present = [(v, n) for v, n in counts.items() if v is not None and n]
    if order is not None:
        rank = {label: i for i, label in enumerate(order)}
        present.sort(key=lambda item: rank.get(item[0], len(rank)))
    else:
        present.sort(key=lambda item: (-item[1], str(item[0])))
    rows = [{"value": v, "count": int(n)} for v, n in present]
    if counts.get(None):
        rows.append({"value": None, "count": int(counts[None])})
    return rows


def _value_counts(series: pl.Series) -> dict[Any, int]:
    frame = series.rename("v").to_frame().group_by("v").len()
    return dict(zip(frame.get_column("v").to_list(), frame.get_column("len").to_list(), strict=True))


def breakdown(entry: cache.Entry, mask: pl.Series, spec: Breakdown) -> list[dict[str, Any]]:
    """Every value of the field among the masked people with its exact count (uncapped)."""
    if spec.source == "bombora":
        return surging_topics(entry, mask)
    if spec.source not in entry.frame.columns:
        return _sorted({None: int(mask.sum())})
    column = entry.frame.get_column(spec.source).filter(mask)
    if spec.bands is not None:
        banded = column.to_frame().select(_band_expr(spec.source, spec.bands)).to_series()
        return _sorted(_value_counts(banded), order=[label for label, _, _ in spec.bands])
    if isinstance(column.dtype, pl.Enum):
        # Count the physical codes (integers), then name them: cheaper than hashing strings at 10M rows.
        counts = _value_counts(column.to_physical())
        categories = column.dtype.categories  # type: ignore[attr-defined]
        return _sorted({(None if code is None else categories[int(code)]): n for code, n in counts.items()})
    return _sorted(_value_counts(column))


def surging_topics(entry: cache.Entry, mask: pl.Series) -> list[dict[str, Any]]:
    """Per Bombora topic: how many of the people have a domain surging on it (score >= 60) in the current week."""
    from bombora.models import BomboraTopic
    from bombora.store import SURGE_THRESHOLD

    if not entry.bombora.height or "domain" not in entry.frame.columns:
        return []
    codes = entry.frame.get_column("domain").to_physical().filter(mask).drop_nulls()
    per_domain = codes.rename("code").to_frame().group_by("code").len()
    surging = entry.bombora.filter(pl.col("score") >= SURGE_THRESHOLD).select("code", "topic_id")
    per_topic = (
        surging.join(per_domain.with_columns(pl.col("code").cast(pl.UInt32)), on="code", how="inner")
        .group_by("topic_id")
        .agg(pl.col("len").sum().alias("n"))
    )
    ids = per_topic.get_column("topic_id").to_list()
    names = dict(BomboraTopic.objects.filter(pk__in=ids).values_list("pk", "name"))
    return _sorted({names.get(t, f"topic {t}"): int(n) for t, n in per_topic.iter_rows()})


def composition(entry: cache.Entry, mask: pl.Series) -> dict[str, list[dict[str, Any]]]:
    """{field: [{"value", "count"}]} for every breakdown, uncapped (the CSV and the analytics export)."""
    return {spec.field: breakdown(entry, mask, spec) for spec in BREAKDOWNS}


def capped(full: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Each field's first `limit` values (by count) plus the missing value: what charts and the API show."""
    result = {}
    for field, rows in full.items():
        limit = BREAKDOWNS_BY_FIELD[field].limit
        values = [r for r in rows if r["value"] is not None]
        result[field] = values[:limit] + [r for r in rows if r["value"] is None]
    return result


def meta(full: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, int]]:
    """Per field: distinct values, how many are shown, and how many people the shown list leaves out."""
    result = {}
    for field, rows in full.items():
        limit = BREAKDOWNS_BY_FIELD[field].limit
        values = [r for r in rows if r["value"] is not None]
        result[field] = {
            "distinct": len(values),
            "shown": min(len(values), limit),
            "others": int(sum(r["count"] for r in values[limit:])),
        }
    return result
