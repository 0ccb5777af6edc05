"""Quality score (0-100) of a set of people, its parts, and concrete recommendations with their fix.

Parts and weights (sum 100): completeness of key fields 25, validity 15, UID2-ready share 20, freshness of the
records 15, freshness of the Bombora week 5, duplicates 10, size against activation minimums 10. Each part has a
score in [0, 1]; the total is the weighted sum, rounded.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from audiences import cache

WEIGHTS = {
    "completeness": 25,
    "validity": 15,
    "uid2_ready": 20,
    "freshness": 15,
    "bombora_freshness": 5,
    "duplicates": 10,
    "size": 10,
}
LIVERAMP_MINIMUM = 25
ICP_SEED_MIN = 10_000
ICP_SEED_MAX = 50_000
MISSING_WARNING = 0.2  # recommend a fix when at least this share of people lack a key field
UID2_WARNING = 0.5

# Key field -> (the noun in "lack a ...", the fix).
KEY_FIELDS: dict[str, tuple[str, str]] = {
    "email": ("an email", "map the Email column (emails make records UID2-ready)"),
    "domain": ("a domain", "map the Website column"),
    "company_name": ("a company name", "map the Company column"),
    "job_title": ("a job title", "map the Title column"),
    "industry": ("an industry", "map the Industry column"),
    "country": ("a country", "map the Country column, or set a default country on import"),
}
DOMAIN_RE = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.[a-z]{2,63}$"
COUNTRY_RE = r"^[A-Za-z]{2}$"
VALIDITY_FIXES = {
    "domain": "fix or remove malformed domains (a website address such as example.com)",
    "country": "use two-letter ISO country codes (US, GB, DE)",
    "employee_count": "employee counts must be positive numbers",
    "revenue": "revenue must not be negative",
}


@dataclass(frozen=True)
class Context:
    """What the score needs besides the people: when their data changed, imports' duplicates, the Bombora week."""

    data_changed_at: dt.datetime | None
    stale_days: int
    duplicates_removed: int | None = None
    rows_read: int | None = None
    now: dt.datetime | None = None


def _pct(share: float) -> str:
    return f"{round(share * 100)} %"


def _string_valid(
    entry: cache.Entry, column: str, mask: pl.Series, pattern: str, known: tuple[int, int] | None = None
) -> tuple[int, int]:
    """(present, valid) among the masked people; the regex runs over an Enum's categories, not its rows.

    `known`: the same (present, valid) when the charts' pass counted them already."""
    if known is not None:
        return known
    series = entry.frame.get_column(column)
    present = int((series.is_not_null() & mask).sum())
    if not present:
        return 0, 0
    if enum_categories(entry, column) is not None:
        # The regex runs over the categories; people are then counted by code (numpy bincount).
        good = _valid_categories(entry, column, pattern)
        codes = series.to_physical().filter(mask).drop_nulls().to_numpy().astype(np.int64, copy=False)
        valid = int(np.bincount(codes, minlength=len(good))[good].sum())
    else:
        valid = int((series.str.contains(pattern).fill_null(False) & mask).sum())
    return present, valid


def enum_categories(entry: cache.Entry, column: str) -> pl.Series | None:
    from audiences.insights.composition import enum_categories as categories

    return categories(entry, column)


def _valid_categories(entry: cache.Entry, column: str, pattern: str) -> Any:
    """Which categories of an Enum column match the pattern (a Boolean array by code), once per cache entry."""
    key = f"insights_valid:{column}:{pattern}"
    with entry.lock:
        good = entry.stats.get(key)
    if good is None:
        categories = enum_categories(entry, column)
        assert categories is not None
        good = categories.str.contains(pattern).fill_null(False).to_numpy()
        with entry.lock:
            entry.stats[key] = good
    return good


def _number_valid(entry: cache.Entry, column: str, mask: pl.Series, low: int) -> tuple[int, int]:
    series = entry.frame.get_column(column)
    present = int((series.is_not_null() & mask).sum())
    return present, int(((series >= low).fill_null(False) & mask).sum())


def score(entry: cache.Entry, mask: pl.Series, ctx: Context, counted: Any = None) -> dict[str, Any]:
    """{"score", "parts": {name: {...,"score", "weight"}}, "recommendations": [str]}.

    `counted`: the charts' one pass over the same mask (composition.Pass): its code counts are reused."""
    size = int(mask.sum()) if counted is None else counted.size
    codes: dict[str, tuple[Any, int]] = {} if counted is None else counted.codes
    known: dict[str, tuple[int, int]] = {} if counted is None else counted.valid
    parts: dict[str, dict[str, Any]] = {}
    recs: list[str] = []
    frame = entry.frame

    # Completeness: share of people with each key field.
    filled: dict[str, float] = {}
    for column, (noun, fix) in KEY_FIELDS.items():
        if column in codes:
            present = size - codes[column][1]
        else:
            present = int((frame.get_column(column).is_not_null() & mask).sum()) if column in frame.columns else 0
        share = present / size if size else 0.0
        filled[column] = round(share, 6)
        if size and 1 - share >= MISSING_WARNING:
            recs.append(f"{_pct(1 - share)} of records lack {noun}: {fix}")
    parts["completeness"] = {"fields": filled, "score": round(sum(filled.values()) / len(filled), 6)}

    # Validity: of the values present, the share that look right.
    checks = {
        "domain": _string_valid(entry, "domain", mask, DOMAIN_RE, known.get("domain")),
        "country": _string_valid(entry, "country", mask, COUNTRY_RE, known.get("country")),
        "employee_count": _number_valid(entry, "employee_count", mask, 1),
        "revenue": _number_valid(entry, "revenue", mask, 0),
    }
    valid_fields = {}
    for column, (present, valid) in checks.items():
        valid_fields[column] = {
            "present": present,
            "valid": valid,
            "share": round(valid / present, 6) if present else None,
        }
        if present and valid < present:
            recs.append(f"{present - valid:,} {column.replace('_', ' ')} values look invalid: {VALIDITY_FIXES[column]}")
    total_present = sum(p for p, _ in checks.values())
    total_valid = sum(v for _, v in checks.values())
    parts["validity"] = {
        "fields": valid_fields,
        "score": round(total_valid / total_present, 6) if total_present else 1.0,
    }

    # UID2-ready: an email or phone hash to map (a hash is present exactly where its base column is).
    hashed = frame.get_column("email_normalized").is_not_null() | frame.get_column("phone_e164").is_not_null()
    ready = int((hashed & mask).sum())
    uid2_share = ready / size if size else 0.0
    parts["uid2_ready"] = {"count": ready, "share": round(uid2_share, 6), "score": round(uid2_share, 6)}
    if size and uid2_share < UID2_WARNING:
        recs.append(
            f"only {_pct(uid2_share)} of records are UID2-ready: add email or phone columns to reach The Trade Desk"
        )

    # Freshness of the records.
    now = ctx.now or dt.datetime.now(dt.UTC)
    age = (now - ctx.data_changed_at).total_seconds() / 86400 if ctx.data_changed_at else None
    if age is None:
        fresh = 0.0
    elif age <= ctx.stale_days / 2:
        fresh = 1.0
    elif age <= ctx.stale_days:
        fresh = 0.5
    else:
        fresh = 0.0
    parts["freshness"] = {
        "age_days": None if age is None else round(age, 2),
        "stale_days": ctx.stale_days,
        "score": fresh,
    }
    if age is not None and age > ctx.stale_days:
        recs.append(f"the data last changed {int(age)} days ago: re-import the file or refresh the audience")

    # Freshness of the Bombora week the intent scores come from.
    week = entry.week
    week_age = (now.date() - week).days if week else None
    bombora = 0.0 if week_age is None else 1.0 if week_age <= 13 else 0.5 if week_age <= 20 else 0.0
    parts["bombora_freshness"] = {"week": week.isoformat() if week else None, "age_days": week_age, "score": bombora}
    if week is None:
        recs.append("no Bombora week is loaded: run the Bombora pickup to target by intent")
    elif bombora < 1.0:
        recs.append(f"the Bombora week is {week_age} days old: check the Bombora pickup (a new week arrives weekly)")

    # Duplicates removed at import (imported audiences) -- a source with many duplicates deserves a look.
    if ctx.rows_read:
        rate = (ctx.duplicates_removed or 0) / ctx.rows_read
        parts["duplicates"] = {
            "removed": ctx.duplicates_removed or 0,
            "rows_read": ctx.rows_read,
            "rate": round(rate, 6),
            "score": round(1 - rate, 6),
        }
        if rate >= 0.1:
            recs.append(
                f"{ctx.duplicates_removed:,} duplicate rows ({_pct(rate)}) were removed at import: dedupe the source "
                "or choose the dedupe key that identifies a person"
            )
    else:
        parts["duplicates"] = {
            "removed": ctx.duplicates_removed,
            "rows_read": ctx.rows_read,
            "rate": None,
            "score": 1.0,
        }

    # Size against activation minimums.
    if size < LIVERAMP_MINIMUM:
        size_score = 0.0
        recs.append(f"this audience is below LiveRamp's {LIVERAMP_MINIMUM}-row minimum: widen the conditions")
    elif size < ICP_SEED_MIN:
        size_score = 0.6
        recs.append(
            f"{size:,} people is below the {ICP_SEED_MIN:,}-{ICP_SEED_MAX:,} an ICP seed needs for lookalikes: "
            "widen it before using it as a seed"
        )
    elif size <= ICP_SEED_MAX:
        size_score = 1.0
    else:
        size_score = 0.9
    parts["size"] = {
        "size": size,
        "liveramp_minimum": LIVERAMP_MINIMUM,
        "icp_seed_range": [ICP_SEED_MIN, ICP_SEED_MAX],
        "meets_liveramp": size >= LIVERAMP_MINIMUM,
        "icp_seed_ready": ICP_SEED_MIN <= size <= ICP_SEED_MAX,
        "score": size_score,
    }
    for name, part in parts.items():
        part["weight"] = WEIGHTS[name]
    total = sum(WEIGHTS[name] * float(part["score"]) for name, part in parts.items())
    return {"score": round(total), "parts": parts, "recommendations": recs}
