"""CSV and XLSX exports of the report tables and summaries: files people open, so text a spreadsheet would
evaluate is neutralised by the one rule of p360.core.exports (XLSX: text cells); numbers stay numbers."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from p360.core.exports import neutralise, xlsx_bytes
from reporting import selectors
from reporting.selectors import METRICS, Filters

CSV_KINDS = ("program", "campaign", "strategy", "placement", "creative", "trend", "source")
NO_PROGRAM = "(no program)"  # campaigns not yet assigned to a program (as attribution's group_by=program names them)
_PATHS = {
    "program": ["program_id", "program"],
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
    if kind == "program":  # orchestration (issue 14): the metrics API's group_by=program
        for row in selectors.by_program(start, end, filters):
            yield {**row, "program": row["program"] if row["program_id"] is not None else NO_PROGRAM}
    elif kind == "trend":
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


def _xlsx_value(column: str, value: Any) -> Any:
    """Metric figures (exact decimal strings) become numbers in the workbook; everything else stays as is."""
    if column in METRICS and isinstance(value, str):
        return Decimal(value)
    return value


def table_xlsx(kind: str, start: dt.date, end: dt.date, filters: Filters, query: str = "") -> bytes:
    """The same table as `table_csv`, as a workbook (text cells are never evaluated: no prefix needed).
    Raises ValueError past Excel's row limit."""
    columns = _PATHS[kind] + METRICS
    rows = ([_xlsx_value(c, row.get(c)) for c in columns] for row in _rows(kind, start, end, filters, query))
    return xlsx_bytes(columns, rows, sheet_name=kind)


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
