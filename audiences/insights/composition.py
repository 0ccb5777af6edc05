"""Composition of a set of people (a Boolean mask over the cache's universe): counts per value of a field.

The bands (employees, revenue) are defined once here; `band_sql` states the same rule in SQL so tests (and
anyone reading the database directly) get the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
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
    """The band of `column` as a SQL CASE (NULL when the value is missing): the same rule as `counts_frame` (a binary search over the upper bounds)."""
    parts = []
    for label, _low, high in bands:
        safe = label.replace("'", "''")
        parts.append(f"WHEN {column} <= {high} THEN '{safe}'" if high is not None else f"ELSE '{safe}'")
    return f"(CASE WHEN {column} IS NULL THEN NULL {' '.join(parts)} END)"


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


def _frame(values: pl.Series, counts: Any, missing: int) -> pl.DataFrame:
    """(value, count) rows from parallel arrays, plus the missing value's row when there is one."""
    frame = pl.DataFrame({"value": values.cast(pl.String), "count": pl.Series(counts, dtype=pl.Int64)})
    if missing:
        frame = pl.concat([frame, pl.DataFrame({"value": [None], "count": [missing]}, schema=frame.schema)])
    return frame


def _code_counts(entry: cache.Entry, column: str, mask: pl.Series, shared: dict[str, Any]) -> tuple[Any, int]:
    """People per category code of an Enum column (numpy bincount: no hashing), and how many have no value."""
    if column not in shared:
        codes = entry.frame.get_column(column).to_physical().filter(mask)
        missing = codes.null_count()
        size = entry.frame.get_column(column).dtype.categories.len()  # type: ignore[attr-defined]
        present = codes.drop_nulls().to_numpy() if missing else codes.to_numpy()
        shared[column] = (np.bincount(present.astype(np.int64, copy=False), minlength=size), missing)
    return shared[column]  # type: ignore[no-any-return]


def _counts(values: pl.Series) -> pl.DataFrame:
    """(value, count) of a plain Series (hash group-by)."""
    counted = values.cast(pl.String).rename("value").to_frame().group_by("value").len()
    return counted.select("value", pl.col("len").cast(pl.Int64).alias("count"))


def rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return [{"value": v, "count": int(n)} for v, n in frame.iter_rows()]


def counts_frame(
    entry: cache.Entry, mask: pl.Series, spec: Breakdown, shared: dict[str, Any] | None = None
) -> pl.DataFrame:
    """Every value of the field among the masked people with its exact count (any order; bands in band order)."""
    shared = {} if shared is None else shared
    if spec.source == "bombora":
        return surging_frame(entry, mask, shared)
    if spec.source not in entry.frame.columns:
        return pl.DataFrame(
            {"value": [None], "count": [int(mask.sum())]}, schema={"value": pl.String, "count": pl.Int64}
        )
    series = entry.frame.get_column(spec.source)
    if spec.bands is not None:
        # Band index by binary search over the bands' upper bounds (inclusive), counted with bincount.
        values = series.filter(mask)
        missing = values.null_count()
        highs = np.array([high for _, _, high in spec.bands if high is not None], dtype=np.int64)
        present = (values.drop_nulls() if missing else values).to_numpy().astype(np.int64, copy=False)
        counts = np.bincount(np.searchsorted(highs, present, side="left"), minlength=len(spec.bands))
        labels = pl.Series([label for label, _, _ in spec.bands])
        frame = _frame(labels, counts, missing)
        return _order(frame, list(labels))
    if isinstance(series.dtype, pl.Enum):
        counts, missing = _code_counts(entry, spec.source, mask, shared)
        nonzero = np.flatnonzero(counts)
        categories = series.dtype.categories  # type: ignore[attr-defined]
        return _frame(categories.gather(pl.Series(nonzero, dtype=pl.UInt32)), counts[nonzero], missing)
    return _counts(series.filter(mask))


def breakdown_frame(entry: cache.Entry, mask: pl.Series, spec: Breakdown) -> pl.DataFrame:
    """Every value with its count in display order (uncapped): the CSV download and the analytics export."""
    frame = counts_frame(entry, mask, spec)
    return frame if spec.bands is not None else _order(frame)


def breakdown(entry: cache.Entry, mask: pl.Series, spec: Breakdown) -> list[dict[str, Any]]:
    return rows(breakdown_frame(entry, mask, spec))


def surging_frame(entry: cache.Entry, mask: pl.Series, shared: dict[str, Any] | None = None) -> pl.DataFrame:
    """Per Bombora topic: how many of the people have a domain surging on it (score >= 60) in the current week."""
    from bombora.models import BomboraTopic
    from bombora.store import SURGE_THRESHOLD

    empty = pl.DataFrame(schema={"value": pl.String, "count": pl.Int64})
    if not entry.bombora.height or "domain" not in entry.frame.columns:
        return empty
    with entry.lock:
        surging = entry.stats.get("surging_pairs")
    if surging is None:  # the week's surging (domain code, topic index) pairs as arrays: once per cache entry
        pairs = entry.bombora.filter(pl.col("score") >= SURGE_THRESHOLD)
        topic_ids, topic_index = np.unique(pairs.get_column("topic_id").to_numpy(), return_inverse=True)
        surging = (pairs.get_column("code").to_numpy().astype(np.int64), topic_index, topic_ids)
        with entry.lock:
            entry.stats["surging_pairs"] = surging
    codes, topic_index, topic_ids = surging
    if not len(codes):
        return empty
    per_domain, _ = _code_counts(entry, "domain", mask, {} if shared is None else shared)
    # People per surging pair = people with that domain; summed per topic (exact: float64 holds counts < 2**53).
    per_topic = np.bincount(topic_index, weights=per_domain[codes], minlength=len(topic_ids)).astype(np.int64)
    found = np.flatnonzero(per_topic)
    if not len(found):
        return empty
    names = dict(BomboraTopic.objects.filter(pk__in=topic_ids[found].tolist()).values_list("pk", "name"))
    labels = pl.Series([names.get(int(t), f"topic {int(t)}") for t in topic_ids[found]], dtype=pl.String)
    return _order(_frame(labels, per_topic[found], 0))


def composition_frames(entry: cache.Entry, mask: pl.Series) -> dict[str, pl.DataFrame]:
    """{field: (value, count) frame} for every breakdown, uncapped; unordered except bands (see `capped`)."""
    shared: dict[str, Any] = {}  # the domain codes' counts serve the domain chart and the Bombora topics
    return {spec.field: counts_frame(entry, mask, spec, shared) for spec in BREAKDOWNS}


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
        total = int(present.sum()) if present.len() else 0
        shown = int(present.top_k(limit).sum()) if present.len() else 0
        result[field] = {"distinct": present.len(), "shown": min(present.len(), limit), "others": total - shown}
    return result
