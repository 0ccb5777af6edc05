"""Composition of a set of people (a Boolean mask over the cache's universe): counts per value of a field.

The bands (employees, revenue) are defined once here; `band_sql` states the same rule in SQL so tests (and
anyone reading the database directly) get the same figures.
"""

from __future__ import annotations

import dataclasses
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


def enum_categories(entry: cache.Entry, column: str) -> pl.Series | None:
    """The categories of an Enum column of the cache (index = physical code), None for other columns.

    Memoised per cache entry: polars rebuilds (and re-validates) an Enum dtype's categories on every `.dtype` or
    `.schema`, which costs tens of ms for a domain column with millions of values."""
    with entry.lock:
        known: dict[str, pl.Series | None] = entry.stats.setdefault("insights_categories", {})
        if column in known:
            return known[column]
    found = None
    if column in entry.frame.columns:
        dtype = entry.frame.get_column(column).dtype
        found = dtype.categories if isinstance(dtype, pl.Enum) else None
    with entry.lock:
        known[column] = found
    return found


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
        size = enum_categories(entry, column).len()  # type: ignore[union-attr]
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
    categories = enum_categories(entry, spec.source)
    if categories is not None:
        counts, missing = _code_counts(entry, spec.source, mask, shared)
        nonzero = np.flatnonzero(counts)
        return _frame(categories.gather(pl.Series(nonzero, dtype=pl.UInt32)), counts[nonzero], missing)
    return _counts(series.filter(mask))


def breakdown_frame(entry: cache.Entry, mask: pl.Series, spec: Breakdown) -> pl.DataFrame:
    """Every value with its count in display order (uncapped): the CSV download and the analytics export."""
    frame = counts_frame(entry, mask, spec)
    return frame if spec.bands is not None else _order(frame)


def breakdown(entry: cache.Entry, mask: pl.Series, spec: Breakdown) -> list[dict[str, Any]]:
    return rows(breakdown_frame(entry, mask, spec))


def _surging_pairs(entry: cache.Entry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The week's surging (domain code, topic index) pairs and the topic ids, as arrays: once per cache entry."""
    from bombora.store import SURGE_THRESHOLD

    with entry.lock:
        surging = entry.stats.get("surging_pairs")
    if surging is None:
        pairs = entry.bombora.filter(pl.col("score") >= SURGE_THRESHOLD)
        topic_ids, topic_index = np.unique(pairs.get_column("topic_id").to_numpy(), return_inverse=True)
        surging = (pairs.get_column("code").to_numpy().astype(np.int64), topic_index, topic_ids)
        with entry.lock:
            entry.stats["surging_pairs"] = surging
    return surging


def surging_frame(entry: cache.Entry, mask: pl.Series, shared: dict[str, Any] | None = None) -> pl.DataFrame:
    """Per Bombora topic: how many of the people have a domain surging on it (score >= 60) in the current week."""

    empty = pl.DataFrame(schema={"value": pl.String, "count": pl.Int64})
    if not entry.bombora.height or "domain" not in entry.frame.columns:
        return empty
    codes, topic_index, topic_ids = _surging_pairs(entry)
    if not len(codes):
        return empty
    per_domain, _ = _code_counts(entry, "domain", mask, {} if shared is None else shared)
    # People per surging pair = people with that domain; summed per topic (exact: float64 holds counts < 2**53).
    per_topic = np.bincount(topic_index, weights=per_domain[codes], minlength=len(topic_ids)).astype(np.int64)
    found = np.flatnonzero(per_topic)
    if not len(found):
        return empty
    names = _topic_names(entry, topic_ids)
    labels = pl.Series([names.get(int(t), f"topic {int(t)}") for t in topic_ids[found]], dtype=pl.String)
    return _order(_frame(labels, per_topic[found], 0))


def _topic_names(entry: cache.Entry, topic_ids: Any) -> dict[int, str]:
    """Names of the week's surging topics, read once per cache entry (one array parameter, not thousands)."""
    from django.db import connection

    from bombora.models import BomboraTopic

    with entry.lock:
        names = entry.stats.get("insights_topic_names")
    if names is None:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, name FROM public.{BomboraTopic._meta.db_table} WHERE id = ANY(%s)",
                [[int(t) for t in topic_ids]],
            )
            names = dict(cursor.fetchall())
        with entry.lock:
            entry.stats["insights_topic_names"] = names
    return names  # type: ignore[no-any-return]


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


# --- One pass (the analytics page at 10M people) -------------------------------------------------------------------
# The page needs, per chart, only the top values, how many distinct values there are and how many people the shown
# ones leave out -- never every value as strings. So: one filter of the physical (dictionary code) columns by the
# membership mask, one numpy bincount per column (a null counted in an extra bin), band indexes by binary search,
# and the labels of the shown codes only. The counts are kept (`Pass.codes`) for the Bombora chart and the quality
# score, which read the same columns.


@dataclass
class Pass:
    size: int
    codes: dict[str, tuple[Any, int]]  # Enum column -> (people per category code, people without a value)
    bands: dict[str, tuple[Any, int]]  # banded column -> (people per band, people without a value)
    plain: dict[str, pl.DataFrame]  # a String column that is not an Enum: (value, count) by hash group-by
    valid: dict[str, tuple[int, int]] = dataclasses.field(
        default_factory=dict
    )  # quality: (present, valid) of domain, country

    def slim(self) -> Pass:
        """What the memo keeps: the counts of people without a value and the validity figures, not the per-code
        arrays (a domain column has millions of codes)."""
        return Pass(
            size=self.size,
            codes={c: (None, missing) for c, (_, missing) in self.codes.items()},
            bands=self.bands,
            plain={},
            valid=self.valid,
        )


def _sources(entry: cache.Entry) -> tuple[list[str], list[str]]:
    """(Enum columns, banded columns) the charts and the quality score read."""
    # The charts' columns (domain and country also serve the quality score's validity); the other key fields need
    # only their null counts, which the quality score reads from the column's validity bitmap.
    wanted = [b.source for b in BREAKDOWNS if b.bands is None and b.source != "bombora"]
    wanted += ["domain", "country"]
    enums = [c for c in dict.fromkeys(wanted) if enum_categories(entry, c) is not None]
    banded = [b.source for b in BREAKDOWNS if b.bands is not None and b.source in entry.frame.columns]
    return enums, banded


def one_pass(entry: cache.Entry, mask: pl.Series) -> Pass:
    """Every chart's counts (and the quality score's) in one filter of the code columns by the mask."""
    enums, banded = _sources(entry)
    size = int(mask.sum())
    exprs = [pl.col(c).to_physical() for c in enums] + [pl.col(c) for c in banded]
    frame = entry.frame.select(exprs)
    if size != entry.height:  # the whole universe (a common big audience): no copy
        frame = frame.filter(mask)
    codes: dict[str, tuple[Any, int]] = {}
    counts: Any
    for column in enums:
        series = frame.get_column(column)
        categories = enum_categories(entry, column).len()  # type: ignore[union-attr]
        missing = series.null_count()
        values = (series.fill_null(categories) if missing else series).to_numpy()
        counts = np.bincount(values.astype(np.int64, copy=False), minlength=categories + 1)
        codes[column] = (counts[:categories], int(counts[categories]))
    bands: dict[str, tuple[Any, int]] = {}
    for spec in BREAKDOWNS:
        if spec.bands is None or spec.source not in banded:
            continue
        series = frame.get_column(spec.source)
        missing = series.null_count()
        highs = [high for _, _, high in spec.bands if high is not None]
        values = (series.fill_null(0) if missing else series).to_numpy()
        # People at or under each upper bound (a vectorised comparison each: faster than a binary search per
        # person), then the differences: the bands' counts.
        at_most = [int(np.count_nonzero(values <= high)) for high in highs]
        counts = np.diff(np.array([0, *at_most, len(values)], dtype=np.int64)).astype(np.int64)
        if missing:
            counts[next((i for i, high in enumerate(highs) if high >= 0), len(highs))] -= (
                missing  # the nulls were counted as 0
            )
        bands[spec.source] = (counts, int(missing))
    plain = {
        b.source: _counts(entry.frame.get_column(b.source).filter(mask))
        for b in BREAKDOWNS
        if b.bands is None and b.source != "bombora" and b.source in entry.frame.columns and b.source not in codes
    }
    return Pass(size=size, codes=codes, bands=bands, plain=plain)


def _surging_rows(entry: cache.Entry, counted: Pass) -> list[dict[str, Any]]:
    """The Bombora chart from the pass's domain counts: people per topic their domain surges on, by count.

    Empty while the cache still reads the week's scores (right after a rebuild: 46 s at 20M scores): the page is
    served without waiting and says so (`bombora_pending`); its memo is keyed by readiness, so it is computed again.
    """
    if not entry.bombora_ready or not entry.bombora.height or "domain" not in counted.codes:
        return []
    codes, topic_index, topic_ids = _surging_pairs(entry)
    if not len(codes):
        return []
    per_domain = counted.codes["domain"][0]
    per_topic = np.bincount(topic_index, weights=per_domain[codes], minlength=len(topic_ids)).astype(np.int64)
    found = np.flatnonzero(per_topic)
    names = _topic_names(entry, topic_ids)
    rows_ = [
        (names.get(int(t), f"topic {int(t)}"), int(n)) for t, n in zip(topic_ids[found], per_topic[found], strict=True)
    ]
    rows_.sort(key=lambda r: (-r[1], r[0]))
    return [{"value": v, "count": n} for v, n in rows_]


def _categories_sorted(entry: cache.Entry, column: str) -> bool:
    """Whether the Enum's category order is the value order (then ties between counts break by code)."""
    key = f"insights_sorted:{column}"
    with entry.lock:
        known = entry.stats.get(key)
    if known is None:
        known = bool(enum_categories(entry, column).is_sorted())  # type: ignore[union-attr]
        with entry.lock:
            entry.stats[key] = known
    return bool(known)


def _top_codes(entry: cache.Entry, column: str, counts: Any, limit: int) -> list[tuple[str, int]]:
    """The `limit` codes with most people (ties: by value), as (label, count), without touching other labels."""
    categories = enum_categories(entry, column)
    assert categories is not None
    nonzero = int(np.count_nonzero(counts))
    if not nonzero:
        return []
    k = min(limit, nonzero)
    threshold = np.partition(counts, len(counts) - k)[len(counts) - k]  # the k-th largest count
    above = np.flatnonzero(counts > threshold)
    tied = np.flatnonzero(counts == threshold) if threshold > 0 else np.array([], dtype=np.int64)
    if _categories_sorted(entry, column):
        chosen = np.concatenate([above, tied[: k - len(above)]])
        labels = categories.gather(pl.Series(chosen, dtype=pl.UInt32)).to_list()
        rows = list(zip(labels, counts[chosen].tolist(), strict=True))
    else:  # order the tied candidates by their labels
        chosen = np.concatenate([above, tied])
        labels = categories.gather(pl.Series(chosen, dtype=pl.UInt32)).to_list()
        rows = list(zip(labels, counts[chosen].tolist(), strict=True))
    rows.sort(key=lambda r: (-r[1], r[0]))
    return [(label, int(n)) for label, n in rows[:k]]


def summary(entry: cache.Entry, mask: pl.Series) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any], Pass]:
    """(capped charts, meta, the pass) for every breakdown: what the page and the API show, from one pass.

    The same figures as `capped(composition_frames(...))` and `meta(...)` (a test holds them to each other)."""
    counted = one_pass(entry, mask)
    shown: dict[str, list[dict[str, Any]]] = {}
    info: dict[str, dict[str, int]] = {}
    for spec in BREAKDOWNS:
        rows_: list[dict[str, Any]]
        if spec.source in counted.codes:
            counts, missing = counted.codes[spec.source]
            top = _top_codes(entry, spec.source, counts, spec.limit)
            distinct = int(np.count_nonzero(counts))
            total = int(counts.sum())
            rows_ = [{"value": v, "count": n} for v, n in top]
        elif spec.source in counted.bands:
            counts, missing = counted.bands[spec.source]
            rows_ = [
                {"value": label, "count": int(n)}
                for (label, _, _), n in zip(spec.bands or (), counts, strict=True)
                if n
            ]
            distinct, total = len(rows_), int(counts.sum())
        elif spec.source == "bombora":
            rows_, missing = _surging_rows(entry, counted), 0
            distinct, total = len(rows_), sum(r["count"] for r in rows_)
        else:
            frame = (
                counted.plain[spec.source]
                if spec.source in counted.plain
                else counts_frame(entry, mask, spec, {c: v for c, v in counted.codes.items()})
            )
            capped_rows = capped({spec.field: frame})[spec.field]
            info.update(meta({spec.field: frame}))
            shown[spec.field] = capped_rows
            continue
        shown[spec.field] = rows_[: spec.limit] + ([{"value": None, "count": missing}] if missing else [])
        shown_total = sum(r["count"] for r in rows_[: spec.limit])
        info[spec.field] = {"distinct": distinct, "shown": min(distinct, spec.limit), "others": total - shown_total}
    from audiences.insights.quality import COUNTRY_RE, DOMAIN_RE, _valid_categories

    for column, pattern in (("domain", DOMAIN_RE), ("country", COUNTRY_RE)):
        if column in counted.codes:
            counts, missing = counted.codes[column]
            good = _valid_categories(entry, column, pattern)
            counted.valid[column] = (counted.size - missing, int(counts[good].sum()))
    return shown, info, counted.slim()
