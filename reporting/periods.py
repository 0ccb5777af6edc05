"""Weeks (Monday to Sunday), months, and date ranges as the reports understand them."""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable

from django.conf import settings

PERIODS = ("week", "month")


class RangeError(ValueError):
    """A date range or period the reports refuse; the message is shown to the user as is."""

    def __init__(self, message: str, field: str = "start") -> None:
        super().__init__(message)
        self.field = field


def period_end(period: str, start: dt.date) -> dt.date:
    if period == "week":
        return start + dt.timedelta(days=6)
    return start.replace(day=calendar.monthrange(start.year, start.month)[1])


def period_start_of(period: str, day: dt.date) -> dt.date:
    if period == "week":
        return day - dt.timedelta(days=day.weekday())
    return day.replace(day=1)


def previous_start(period: str, start: dt.date) -> dt.date:
    if period == "week":
        return start - dt.timedelta(days=7)
    return (start - dt.timedelta(days=1)).replace(day=1)


def next_start(period: str, start: dt.date) -> dt.date:
    return period_end(period, start) + dt.timedelta(days=1)


# Dates outside these bounds are refused: arithmetic on them (the previous period, a lookback) would leave
# Python's date range, and no advertising data is that old or that far ahead.
EARLIEST = dt.date(2000, 1, 1)
LATEST = dt.date(2100, 12, 31)


def check_bounds(day: dt.date, field: str) -> dt.date:
    if not EARLIEST <= day <= LATEST:
        raise RangeError(f"{field} {day.isoformat()} is outside {EARLIEST.isoformat()}..{LATEST.isoformat()}", field)
    return day


def check_period(period: str, start: dt.date) -> None:
    """A week starts on a Monday, a month on the 1st; anything else is refused (not silently moved)."""
    if period not in PERIODS:
        raise RangeError(f"unknown period {period!r}; use week or month", "period")
    check_bounds(start, "start")
    expected = period_start_of(period, start)
    if start != expected:
        what = "weeks start on a Monday" if period == "week" else "months start on the 1st"
        raise RangeError(f"{start.isoformat()} is not a {period} start: {what} (use {expected.isoformat()})")


def parse_date(value: str | None, field: str) -> dt.date:
    if not value:
        raise RangeError(f"{field} is required (YYYY-MM-DD)", field)
    try:
        day = dt.date.fromisoformat(value.strip())
    except ValueError:
        raise RangeError(f"{field} {value!r} is not a date (YYYY-MM-DD)", field) from None
    return check_bounds(day, field)


def check_range(start: dt.date, end: dt.date) -> None:
    check_bounds(start, "start")
    check_bounds(end, "end")
    if end < start:
        raise RangeError(f"the range ends ({end}) before it starts ({start})", "end")
    limit = settings.P360_REPORT_MAX_DAYS
    if (end - start).days + 1 > limit:
        raise RangeError(f"a range covers at most {limit} days; this one covers {(end - start).days + 1}", "end")


def previous_range(start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    """The range of equal length just before [start, end]."""
    length = (end - start).days + 1
    return start - dt.timedelta(days=length), start - dt.timedelta(days=1)


def periods_of(days: Iterable[dt.date]) -> list[tuple[str, dt.date]]:
    """Every (period, start) that contains one of `days`, in order."""
    out = {(period, period_start_of(period, day)) for day in days for period in PERIODS}
    return sorted(out, key=lambda item: (item[1], item[0]))


def presets(today: dt.date) -> dict[str, tuple[str, dt.date, dt.date]]:
    """Named ranges of the date picker; "last N days" end yesterday (the newest complete day)."""
    yesterday = today - dt.timedelta(days=1)
    this_month = today.replace(day=1)
    last_month_end = this_month - dt.timedelta(days=1)
    return {
        "last7": ("Last 7 days", yesterday - dt.timedelta(days=6), yesterday),
        "last30": ("Last 30 days", yesterday - dt.timedelta(days=29), yesterday),
        "last90": ("Last 90 days", yesterday - dt.timedelta(days=89), yesterday),
        "this_month": ("This month", this_month, max(this_month, yesterday)),
        "last_month": ("Last month", last_month_end.replace(day=1), last_month_end),
    }
