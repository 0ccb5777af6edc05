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


def _order(frame: pl.DataFrame, order: list[str] | None = None) -> pl.DataFrame:
    """Non-null values by count (desc) then value, or in band order; the missing value (null) last."""
    present = frame.filter(pl.col("value").is_not_null() & (pl.col("count") > 0))
    if order is not None:
        rank = {label: i for i, label in enumerate(order)}
        present = present.sort(pl.col("value").replace_strict(rank, default=len(rank), return_dtype=pl.Int32))
    else:
        present = present.sort(["count", "value"], descending=[True, False])
    missing = frame.filter(pl.col("value").is_null() & (pl.col("count") > 0))
    return pl.concat([present, missing])


def _counts(values: pl.Series) -> pl.DataFrame:
    """(value, count) of a Series: Enum columns are counted by physical code (integers), then named."""
    if isinstance(values.dtype, pl.Enum):
        categories = values.dtype.categories  # type: ignore[attr-defined]
        counted = values.to_physical().rename("code").to_frame().group_by("code").len()
        codes = counted.get_column("code")
        named = pl.Series("value", [None] * codes.len(), dtype=pl.String)
        present = codes.is_not_null()
        if present.any():
            named = named.scatter(present.arg_true(), categories.gather(codes.filter(present)))
        return pl.DataFrame({"value": named, "count": counted.get_column("len").cast(pl.Int64)})
    counted = values.cast(pl.String).rename("value").to_frame().group_by("value").len()
    return counted.select("value", pl.col("len").cast(pl.Int64).alias("count"))


def rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return [{"value": v, "count": int(n)} for v, n in frame.iter_rows()]


def counts_frame(entry: cache.Entry, mask: pl.Series, spec: Breakdown) -> pl.DataFrame:
    """Every value of the field among the masked people with its exact count (any order; bands in band order)."""
    if spec.source == "bombora":
        return surging_frame(entry, mask)
    if spec.source not in entry.frame.columns:
        return pl.DataFrame(
            {"value": [None], "count": [int(mask.sum())]}, schema={"value": pl.String, "count": pl.Int64}
        )
    column = entry.frame.get_column(spec.source).filter(mask)
    if spec.bands is not None:
        banded = column.to_frame().select(_band_expr(spec.source, spec.bands)).to_series()
        return _order(_counts(banded), [label for label, _, _ in spec.bands])
    return _counts(column)


def breakdown_frame(entry: cache.Entry, mask: pl.Series, spec: Breakdown) -> pl.DataFrame:
    """Every value with its count in display order (uncapped): the CSV download and the analytics export."""
    frame = counts_frame(entry, mask, spec)
    return frame if spec.bands is not None else _order(frame)


def breakdown(entry: cache.Entry, mask: pl.Series, spec: Breakdown) -> list[dict[str, Any]]:
    return rows(breakdown_frame(entry, mask, spec))


def surging_frame(entry: cache.Entry, mask: pl.Series) -> pl.DataFrame:
    """Per Bombora topic: how many of the people have a domain surging on it (score >= 60) in the current week."""
    from bombora.models import BomboraTopic
    from bombora.store import SURGE_THRESHOLD

    empty = pl.DataFrame(schema={"value": pl.String, "count": pl.Int64})
    if not entry.bombora.height or "domain" not in entry.frame.columns:
        return empty
    codes = entry.frame.get_column("domain").to_physical().filter(mask).drop_nulls()
    per_domain = codes.rename("code").to_frame().group_by("code").len()
    with entry.lock:
        surging = entry.stats.get("surging_codes")
    if surging is None:  # the week's surging (domain code, topic) pairs: once per cache entry
        surging = entry.bombora.filter(pl.col("score") >= SURGE_THRESHOLD).select("code", "topic_id")
        with entry.lock:
            entry.stats["surging_codes"] = surging
    per_topic = (
        surging.join(per_domain.with_columns(pl.col("code").cast(pl.UInt32)), on="code", how="inner")
        .group_by("topic_id")
        .agg(pl.col("len").sum().cast(pl.Int64).alias("count"))
    )
    if not per_topic.height:
        return empty
    names = dict(
        BomboraTopic.objects.filter(pk__in=per_topic.get_column("topic_id").to_list()).values_list("pk", "name")
    )
    named = per_topic.select(
        pl.col("topic_id").replace_strict(names, default=None, return_dtype=pl.String).alias("value"), "count"
    )
    return _order(named)


def composition_frames(entry: cache.Entry, mask: pl.Series) -> dict[str, pl.DataFrame]:
    """{field: (value, count) frame} for every breakdown, uncapped; unordered except bands (see `capped`)."""
    return {spec.field: counts_frame(entry, mask, spec) for spec in BREAKDOWNS}


def composition(entry: cache.Entry, mask: pl.Series) -> dict[str, list[dict[str, Any]]]:
    """{field: [{"value", "count"}]} for every breakdown, uncapped and ordered (the analytics export)."""
    return {spec.field: breakdown(entry, mask, spec) for spec in BREAKDOWNS}


def capped(frames: dict[str, pl.DataFrame]) -> dict[str, list[dict[str, Any]]]:
    """Each field's first `limit` values (by count) plus the missing value: what charts and the API show."""
    result = {}
    for field, frame in frames.items():
        spec = BREAKDOWNS_BY_FIELD[field]
        present = frame.filter(pl.col("value").is_not_null() & (pl.col("count") > 0))
        if spec.bands is None:  # the top values only: no full sort of (up to millions of) domains
            present = _order(present.top_k(spec.limit, by=["count", "value"], reverse=[False, True]))
        missing = frame.filter(pl.col("value").is_null() & (pl.col("count") > 0))
        result[field] = rows(present.head(spec.limit)) + rows(missing)
    return result


def meta(frames: dict[str, pl.DataFrame]) -> dict[str, dict[str, int]]:
    """Per field: distinct values, how many are shown, and how many people the shown list leaves out."""
    result = {}
    for field, frame in frames.items():
        limit = BREAKDOWNS_BY_FIELD[field].limit
        present = frame.filter(pl.col("value").is_not_null() & (pl.col("count") > 0)).get_column("count")
        shown = present.top_k(limit).sum() if present.len() else 0
        result[field] = {
            "distinct": present.len(),
            "shown": min(present.len(), limit),
            "others": int(present.sum() - shown) if present.len() else 0,
        }
    return result
