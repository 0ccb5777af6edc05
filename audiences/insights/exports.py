"""BI exports: an audience's members and its analytics as CSV or Parquet.

Machine files carry exact values (no spreadsheet escaping): BI tools read them, not people in Excel.
"""

from __future__ import annotations

import io
from typing import Any

import polars as pl

from audiences import cache
from audiences.insights import selectors
from audiences.models import Audience

FORMATS = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}
INTERNAL = {"__rid", "version_id"}


def members_frame(audience: Audience) -> pl.DataFrame:
    """The audience's people with their canonical, derived and custom fields (one row per person)."""
    entry, _ = cache.get()
    mask = selectors.audience_mask(entry, audience)
    frame = entry.frame.filter(mask)
    columns = [c for c in frame.columns if c not in INTERNAL]
    # Enum columns go out as text: a BI tool should not need our category lists.
    return frame.select(
        [pl.col(c).cast(pl.String) if isinstance(frame.schema[c], pl.Enum) else pl.col(c) for c in columns]
    )


def analytics_frame(audience: Audience) -> pl.DataFrame:
    """One long table: (section, field, value, count, score) for composition (uncapped) and quality parts."""
    payload = selectors.audience_insights(audience)
    entry, _ = cache.get()
    full = selectors.comp.composition(entry, selectors.audience_mask(entry, audience))
    rows: list[dict[str, Any]] = [
        {"section": "size", "field": "size", "value": None, "count": payload["size"], "score": None}
    ]
    for field, values in full.items():
        rows.extend(
            {"section": "composition", "field": field, "value": v["value"], "count": v["count"], "score": None}
            for v in values
        )
    rows.append(
        {
            "section": "quality",
            "field": "score",
            "value": None,
            "count": None,
            "score": float(payload["quality"]["score"]),
        }
    )
    for name, part in payload["quality"]["parts"].items():
        rows.append({"section": "quality", "field": name, "value": None, "count": None, "score": float(part["score"])})
    rows.append(
        {
            "section": "freshness",
            "field": "data_changed_at",
            "value": payload["data_changed_at"],
            "count": None,
            "score": None,
        }
    )
    schema = {"section": pl.String, "field": pl.String, "value": pl.String, "count": pl.Int64, "score": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def encode(frame: pl.DataFrame, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "parquet":
        frame.write_parquet(buffer)
    else:
        frame.write_csv(buffer)
    return buffer.getvalue()
