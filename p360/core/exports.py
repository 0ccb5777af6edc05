"""One rule for every export: machine files carry exact values; files people open are formula-safe.

Two kinds of file leave P360:

- **Machine files** (API exports such as `GET /o/<slug>/api/v1/audiences/<id>/members?format=csv`,
  delivery files, Parquet): every value exactly as stored. A Base64 SHA-256 starting with `+` or an
  E.164 phone `+14155550039` is never altered. Nothing in this module touches them.
- **Files people open** (page downloads): XLSX with text cells (a text cell is never evaluated, so
  no prefix is needed), or CSV where only what a spreadsheet would *evaluate* is neutralised with a
  leading `'`: text starting with `=`, `+`, `-`, `@`, tab or CR that is not a plain number. Numbers
  (`-12.5`, `+3`, `1e5`) stay numeric, so sums and sorting still work.

The same rule exists as a Python function (`neutralise`), a polars expression (`neutralise_expr`) and a
SQL expression (`neutralise_sql`); tests/p360/test_exports.py checks they agree on the same values.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

import polars as pl

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_NUMBER_RE = re.compile(_NUMBER)
_START = r"^[=+@\t\r-]"
XLSX_MAX_ROWS = 1_048_576  # Excel's sheet limit, header included
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def would_evaluate(value: str) -> bool:
    """True when a spreadsheet opening this CSV text would run it as a formula."""
    return value[:1] in FORMULA_START and _NUMBER_RE.match(value) is None


def neutralise(value: Any) -> Any:
    """A CSV cell for people: formula-looking text gets a leading quote; anything else unchanged."""
    if isinstance(value, str) and would_evaluate(value):
        return "'" + value
    return value


def neutralise_expr(expr: pl.Expr) -> pl.Expr:
    """`neutralise` as a polars expression over a text column (nulls stay null)."""
    return pl.when(expr.str.contains(_START) & ~expr.str.contains(_NUMBER)).then(pl.lit("'") + expr).otherwise(expr)


def neutralise_sql(column: str) -> str:
    """`neutralise` as a PostgreSQL expression over a text column (for COPY ... TO STDOUT)."""
    return f"CASE WHEN {column} ~ '{_START}' AND {column} !~ '{_NUMBER}' THEN '''' || {column} ELSE {column} END"


def _xlsx_cell(sheet: Any, row: int, col: int, value: Any) -> None:
    if value is None or value == "":
        return
    if isinstance(value, bool):
        sheet.write_boolean(row, col, value)
    elif isinstance(value, int | float | decimal.Decimal):
        sheet.write_number(row, col, float(value))
    elif isinstance(value, dt.date):
        sheet.write_string(row, col, value.isoformat())
    else:
        sheet.write_string(row, col, str(value))  # a text cell: never evaluated, shown verbatim


def xlsx_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]], sheet_name: str = "Export") -> bytes:
    """An XLSX workbook for people: text stays text (no prefix), numbers are numbers.

    Raises ValueError past Excel's row limit (offer the CSV instead)."""
    import xlsxwriter

    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(
        buffer,
        {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False},
    )
    sheet = workbook.add_worksheet(sheet_name[:31])
    bold = workbook.add_format({"bold": True})
    for col, name in enumerate(header):
        sheet.write_string(0, col, name, bold)
    count = 0
    for count, row in enumerate(rows, 1):
        if count >= XLSX_MAX_ROWS:
            workbook.close()
            raise ValueError(f"more than {XLSX_MAX_ROWS - 1:,} rows: too many for XLSX, download the CSV")
        for col, value in enumerate(row):
            _xlsx_cell(sheet, count, col, value)
    workbook.close()
    return buffer.getvalue()
