"""The comparison page and its CSV: data, empty state, bad input, isolation, admin link, formulas."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from tests.attribution.helpers import DAY, conv, imp, insert_events

pytestmark = pytest.mark.django_db

PAGE = "/o/acme/reports/attribution/"
RANGE = {"start": DAY.isoformat(), "end": DAY.isoformat()}


def test_page_compares_the_six_models(acme: Any, login: Any, acme_marketer: Any) -> None:
    insert_events(acme, [imp(-3, "A", cost=2.0), imp(-2, "B"), imp(-1, "C"), conv(0, value=100.0)])
    response = login(acme_marketer).get(PAGE, RANGE)
    assert response.status_code == 200
    html = response.content.decode()
    for label in ("First touch", "Last touch", "Linear", "Time decay", "Position based", "Data-driven (Markov)"):
        assert label in html
    assert 'id="attr-chart"' in html and "vendor/chart.umd.min.js" in html
    chart = json.loads(html.split('id="attr-chart-data" type="application/json">')[1].split("</script>")[0])
    assert len(chart["datasets"]) == 6
    assert chart["labels"] == ["A", "B", "C"] or sorted(chart["labels"]) == ["A", "B", "C"]
    by_model = {d["label"]: dict(zip(chart["labels"], d["data"], strict=True)) for d in chart["datasets"]}
    assert by_model["First touch"] == {"A": 1.0, "B": 0.0, "C": 0.0}
    assert by_model["Position based"] == {"A": 0.4, "B": 0.2, "C": 0.4}
    assert "Conversions credited per campaign and model" in html
    assert "export.csv?" in html
    assert 'aria-current="page"' in html and ">Attribution</a>" in html  # nav link


def test_page_defaults_to_the_30_days_ending_on_the_newest_reds_day(acme: Any, login: Any, acme_marketer: Any) -> None:
    insert_events(acme, [imp(-3, "A"), conv(0)])
    html = login(acme_marketer).get(PAGE).content.decode()
    assert f'value="{DAY.isoformat()}"' in html
    assert "Attributed conversions" in html


def test_empty_state_says_what_feeds_attribution(acme: Any, login: Any, acme_marketer: Any) -> None:
    response = login(acme_marketer).get(PAGE, {"start": "2020-01-01", "end": "2020-01-31"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "No REDS events in this range: REDS hourly files feed attribution" in html
    assert 'id="attr-chart"' not in html
    assert "How each model shares the credit" in html


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": "2026-11-10", "end": "2026-11-01"}, "end is before start"),
        ({"group_by": "creative"}, "unknown group"),
        ({"lookback_days": "120"}, "lookback_days must be between 1 and 90"),
        ({"lookback_days": "x"}, "whole number"),
        ({"half_life_days": "0"}, "half_life_days must be greater than 0"),
        ({"start": "yesterday"}, "start is not a date"),
    ],
)
def test_bad_controls_are_a_400_page_with_the_reason(
    params: dict[str, str], message: str, login: Any, acme_marketer: Any
) -> None:
    response = login(acme_marketer).get(PAGE, {**RANGE, **params})
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html and 'role="alert"' in html and 'aria-invalid="true"' in html


def test_globex_marketer_gets_404(acme: Any, login: Any, globex_marketer: Any) -> None:
    insert_events(acme, [imp(-1, "A"), conv(0)])
    client = login(globex_marketer)
    assert client.get(PAGE, RANGE).status_code == 404
    assert client.get(PAGE + "export.csv", RANGE).status_code == 404


def test_csv_download_neutralises_formulas(acme: Any, login: Any, acme_marketer: Any) -> None:
    insert_events(acme, [imp(-2, '=HYPERLINK("http://x")'), imp(-1, "@SUM(1)", cost=2.0), conv(0, value=10.0)])
    response = login(acme_marketer).get(PAGE + "export.csv", RANGE)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert {row["key"] for row in rows} == {'\'=HYPERLINK("http://x")', "'@SUM(1)"}
    by_key = {row["key"]: row for row in rows}
    assert float(by_key["'@SUM(1)"]["last_touch_conversions"]) == 1.0
    assert float(by_key["'@SUM(1)"]["last_touch_roas"]) == 5.0
    assert float(by_key['\'=HYPERLINK("http://x")']["first_touch_revenue"]) == 10.0
    assert by_key['\'=HYPERLINK("http://x")']["first_touch_roas"] == ""  # no cost: empty, not a division error
    header = response.content.decode().splitlines()[0].split(",")
    assert header[:3] == ["key", "name", "cost"] and len(header) == 3 + 6 * 3


def test_csv_bad_input_is_a_400(login: Any, acme_marketer: Any) -> None:
    response = login(acme_marketer).get(PAGE + "export.csv", {"start": "2026-11-10", "end": "2026-01-01"})
    assert response.status_code == 400
    assert b"end is before start" in response.content


def test_page_html_escapes_key_names(acme: Any, login: Any, acme_marketer: Any) -> None:
    insert_events(acme, [imp(-1, "<script>alert(1)</script>"), conv(0)])
    html = login(acme_marketer).get(PAGE, RANGE).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_org_admin_links_to_the_page(login: Any, super_admin: Any) -> None:
    response = login(super_admin).get("/o/acme/admin/")
    assert response.status_code == 200
    assert PAGE.encode() in response.content


def test_page_query_count_does_not_grow_with_keys(
    acme: Any, login: Any, acme_marketer: Any, django_assert_max_num_queries: Any
) -> None:
    insert_events(acme, [imp(-1 - n * 0.01, f"K{n}") for n in range(40)] + [conv(0)])
    client = login(acme_marketer)
    with django_assert_max_num_queries(25):
        assert client.get(PAGE, RANGE).status_code == 200


def test_page_groups_by_line_item(acme: Any, login: Any, acme_marketer: Any) -> None:
    insert_events(acme, [imp(-2, "A", line_item="li-3"), conv(0)])
    html = login(acme_marketer).get(PAGE, {**RANGE, "group_by": "line_item"}).content.decode()
    assert "Conversions credited per line item and model" in html
    assert ">li-3<" in html
