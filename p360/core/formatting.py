"""The one formatting layer for figures people read: pages, the admin and the PDF.

Exact values stay in exports and the API; these functions only present them.
- money: the currency's symbol (or its code), thousands separators, 2 places ("$125,537.54").
- percentages: stored figures are already in percent; CTR and other small shares get 2 places ("0.43 %"),
  ROAS and other large ones 1 place ("229.3 %").
- counts: thousands separators, no places ("1,234,567").
- dates: "6 Dec 2026" everywhere; date ranges "6 Dec 2026 to 12 Dec 2026".
- codes: a stored choice as its label ("reds" -> "TTD REDS"); an unknown code as it is.
A missing figure is an em dash.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

DASH = "—"
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CAD": "CA$", "AUD": "A$", "CHF": "CHF "}
DEFAULT_CURRENCY = "USD"

# What each metric key of the reports is, so one call formats any figure by its name.
MONEY_METRICS = frozenset({"spend", "conversion_revenue", "revenue", "cpc", "cpa", "cpm", "budget", "credited_revenue"})
COUNT_METRICS = frozenset({"impressions", "clicks", "conversions", "events", "rows", "records", "paths"})
PERCENT_PLACES = {"ctr": 2, "roas": 1, "cvr": 2, "share": 1}
RATIO_METRICS = frozenset({"credited_conversions", "conversions_credited"})


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _fixed(number: Decimal, places: int) -> str:
    quantum = Decimal(1).scaleb(-places)
    return f"{number.quantize(quantum, rounding=ROUND_HALF_UP):,.{places}f}"


def money(value: Any, currency: str | None = None, places: int = 2) -> str:
    number = _decimal(value)
    if number is None:
        return DASH
    code = (currency or DEFAULT_CURRENCY).upper()
    symbol = SYMBOLS.get(code)
    body = _fixed(abs(number), places)
    sign = "-" if number < 0 and body.strip("0.,") else ""
    return f"{sign}{symbol}{body}" if symbol else f"{sign}{body} {code}"


def choice(choices: Any, code: Any) -> str:
    """A model choice's label (`choices`: a Django `Choices` class), or the code itself when it is not one."""
    return dict(choices.choices).get(str(code), str(code))


def count(value: Any) -> str:
    number = _decimal(value)
    return DASH if number is None else _fixed(number, 0)


def decimal(value: Any, places: int = 2) -> str:
    number = _decimal(value)
    return DASH if number is None else _fixed(number, places)


def percent(value: Any, places: int = 2) -> str:
    """`value` is already in percent (CTR 0.434303 -> "0.43 %")."""
    number = _decimal(value)
    return DASH if number is None else f"{_fixed(number, places)} %"


def signed_percent(value: Any, places: int = 1) -> str:
    """A change in percent with its sign ("+12.5 %", "-3.0 %")."""
    number = _decimal(value)
    if number is None:
        return DASH
    text = percent(number, places)
    return text if text.startswith("-") else f"+{text}"


def day(value: Any) -> str:
    """One date format everywhere: "6 Dec 2026" (datetimes are shown by their date)."""
    if value is None or value == "":
        return DASH
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value[:10])
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        value = value.date()
    return f"{value.day} {value:%b %Y}"


def moment(value: Any) -> str:
    """A timestamp: "6 Dec 2026 14:05" (UTC as stored)."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if not isinstance(value, dt.datetime):
        return day(value)
    return f"{day(value)} {value:%H:%M}"


def day_range(start: Any, end: Any) -> str:
    return f"{day(start)} \u2013 {day(end)}"


def day_span(start: Any, end: Any) -> str:
    """A compact range for narrow cells: "9 \u2013 22 Nov 2026", "28 Oct \u2013 3 Nov 2026"."""
    first, last = _as_date(start), _as_date(end)
    if first is None or last is None:
        return day_range(start, end)
    if (first.year, first.month) == (last.year, last.month):
        return f"{first.day} \u2013 {day(last)}"
    if first.year == last.year:
        return f"{first.day} {first:%b} \u2013 {day(last)}"
    return day_range(first, last)


def _as_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def metric(key: str, value: Any, currency: str | None = None) -> str:
    """Format a report figure by its metric name (spend, ctr, roas, impressions...)."""
    if key in MONEY_METRICS:
        return money(value, currency)
    if key in PERCENT_PLACES:
        return percent(value, PERCENT_PLACES[key])
    if key in COUNT_METRICS:
        return count(value)
    if key in RATIO_METRICS:
        return decimal(value, 1)
    number = _decimal(value)
    if number is None:
        return DASH if value is None else str(value)
    return count(number) if number == number.to_integral_value() else decimal(number, 2)
