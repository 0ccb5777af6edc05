"""CSV exports of the report tables and summaries: files people open, so text a spreadsheet would
evaluate is neutralised by the one rule of p360.core.exports; numbers stay numbers."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from typing import Any

from p360.core.exports import neutralise
from reporting import selectors
from reporting.selectors import METRICS, Filters

CSV_KINDS = ("campaign", "strategy", "placement", "creative", "trend", "source")
_PATHS = {
    "campaign": ["campaign_id", "campaign", "campaign_source"],
    "strategy": ["campaign_id", "campaign", "strategy_id", "strategy"],
    "placement": ["campaign_id", "campaign", "strategy", "placement_id", "placement"],
    "creative": ["campaign_id", "campaign", "strategy", "placement", "creative_id", "creative"],
    "trend": ["date"],
    "source": ["source"],
}
PAGE = 5000


class _Echo:
    def write(self, value: str) -> str:
        return value


def _rows(kind: str, start: dt.date, end: dt.date, filters: Filters, query: str) -> Iterator[dict[str, Any]]:
    if kind == "trend":
        yield from selectors.trend(start, end, filters)
    elif kind == "source":
        yield from selectors.by_source(start, end, filters)
    else:
        page = 1
        while True:  # page through the table: bounded memory for creative tables of any size
            chunk = selectors.table(kind, start, end, filters, query=query, sort="spend", page=page, per_page=PAGE)
            yield from chunk.rows
            if page >= chunk.pages:
                break
            page += 1


def table_csv(kind: str, start: dt.date, end: dt.date, filters: Filters, query: str = "") -> Iterator[str]:
    writer = csv.writer(_Echo())
    columns = _PATHS[kind] + METRICS
    yield writer.writerow(columns)
    for row in _rows(kind, start, end, filters, query):
        yield writer.writerow([neutralise(row.get(c)) for c in columns])


def summary_csv(body: dict[str, Any]) -> Iterator[str]:
    """One file: the totals with deltas, then each top list and the underperformers."""
    writer = csv.writer(_Echo())
    yield writer.writerow(["section", "name", *METRICS])
    yield writer.writerow(["totals", f"{body['start']}..{body['end']}", *[body["totals"][m] for m in METRICS]])
    previous = f"{body['previous_start']}..{body['previous_end']}"
    yield writer.writerow(["previous_totals", previous, *[body["previous_totals"][m] for m in METRICS]])
    yield writer.writerow(["delta_abs", "", *[body["deltas"][m]["abs"] for m in METRICS]])
    yield writer.writerow(["delta_pct", "", *[body["deltas"][m]["pct"] for m in METRICS]])
    sections = [
        ("top_campaigns_by_conversions", body["top_campaigns"]["by_conversions"], "campaign"),
        ("top_campaigns_by_revenue", body["top_campaigns"]["by_revenue"], "campaign"),
        ("top_creatives_by_conversions", body["top_creatives"]["by_conversions"], "creative"),
        ("top_creatives_by_revenue", body["top_creatives"]["by_revenue"], "creative"),
        ("underperformers", body["underperformers"], "creative"),
    ]
    for section, rows, name in sections:
        for row in rows:
            yield writer.writerow([section, neutralise(row[name]), *[row[m] for m in METRICS]])
