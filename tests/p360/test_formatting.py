"""Issue 15 item 11: one formatting layer for figures people read (pages, admin, PDF)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.template import Context, Template

from p360.core import formatting


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("spend", "125537.54", "$125,537.54"),
        ("cpa", "43.8944", "$43.89"),
        ("ctr", "0.434303", "0.43 %"),
        ("roas", "229.2752", "229.3 %"),
        ("impressions", 21356557, "21,356,557"),
        ("conversions", None, "—"),
        ("spend", "-0.001", "$0.00"),
        ("spend", "-1234.5", "-$1,234.50"),
    ],
)
def test_metric_by_name(key, value, shown):
    assert formatting.metric(key, value) == shown


def test_money_currency_dates_and_changes():
    assert formatting.money(Decimal("1234.5"), "EUR") == "€1,234.50"
    assert formatting.money(10, "SEK") == "10.00 SEK"
    assert formatting.money("167230.16", places=0) == "$167,230"
    assert formatting.day(dt.date(2026, 12, 6)) == "6 Dec 2026"
    assert formatting.day("2026-12-06") == formatting.day(dt.datetime(2026, 12, 6, 23, 59)) == "6 Dec 2026"
    assert formatting.moment("2026-12-06T07:05:00+00:00") == "6 Dec 2026 07:05"
    assert formatting.signed_percent("12.345") == "+12.3 %" and formatting.signed_percent("-3") == "-3.0 %"
    assert formatting.money("nan") == formatting.count("x") == "—"


def test_template_filters_use_the_same_functions():
    rendered = Template(
        "{% load figures %}{{ a|money }} {{ b|pct }} {{ c|count }} {{ d|day }} {{ e|ratio_pct }} {% figure 'roas' f %}"
    ).render(Context({"a": "1234.5", "b": "0.4343", "c": 1234, "d": dt.date(2026, 1, 2), "e": 2.2928, "f": "229.27"}))
    assert rendered == "$1,234.50 0.43 % 1,234 2 Jan 2026 229.3 % 229.3 %"
