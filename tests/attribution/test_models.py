"""Hand-computed credit for every model, through the API (the contract's credit rules)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.attribution.helpers import DAY, clk, conv, imp, insert_events

pytestmark = pytest.mark.django_db

API = "/o/acme/api/v1/attribution"


@pytest.fixture
def api(login: Any, acme_marketer: Any) -> Any:
    client = login(acme_marketer)

    def get(model: str, start: dt.date = DAY, end: dt.date = DAY, **params: Any) -> dict[str, Any]:
        response = client.get(API, {"model": model, "start": start.isoformat(), "end": end.isoformat(), **params})
        assert response.status_code == 200, response.content
        return response.json()

    return get


def credit(body: dict[str, Any]) -> dict[str, float]:
    return {row["key"]: row["conversions"] for row in body["rows"] if row["conversions"]}


def revenue(body: dict[str, Any]) -> dict[str, float]:
    return {row["key"]: row["revenue"] for row in body["rows"] if row["revenue"]}


def approx(values: dict[str, float]) -> Any:
    return pytest.approx(values, abs=2e-6)


def test_one_touch_gets_everything_in_every_model(acme: Any, api: Any) -> None:
    insert_events(acme, [imp(-3, "A"), conv(0, value=80.0)])
    for model in ("first_touch", "last_touch", "linear", "time_decay", "position_based", "markov"):
        body = api(model)
        assert body["model"] == model
        assert credit(body) == approx({"A": 1.0}), model
        assert revenue(body) == approx({"A": 80.0}), model
        assert body["unattributed"]["conversions"] == 0


def test_two_touches(acme: Any, api: Any) -> None:
    insert_events(acme, [imp(-48, "A"), clk(-24, "B"), conv(0, value=100.0)])
    assert credit(api("first_touch")) == approx({"A": 1.0})
    assert credit(api("last_touch")) == approx({"B": 1.0})
    assert credit(api("linear")) == approx({"A": 0.5, "B": 0.5})
    assert credit(api("position_based")) == approx({"A": 0.5, "B": 0.5})
    # ages 2 and 1 days, half-life 7: weights 2^(-2/7) and 2^(-1/7)
    a, b = 2 ** (-2 / 7), 2 ** (-1 / 7)
    assert credit(api("time_decay")) == approx({"A": a / (a + b), "B": b / (a + b)})
    body = api("time_decay", half_life_days=1)
    assert credit(body) == approx({"A": 1 / 3, "B": 2 / 3})  # 2^-2 : 2^-1
    assert revenue(body) == approx({"A": 33.33, "B": 66.67})


def test_three_and_more_touches(acme: Any, api: Any) -> None:
    insert_events(acme, [imp(-96, "A"), clk(-72, "B"), imp(-48, "C"), imp(-24, "B"), conv(0, value=50.0)])
    assert credit(api("first_touch")) == approx({"A": 1.0})
    assert credit(api("last_touch")) == approx({"B": 1.0})
    assert credit(api("linear")) == approx({"A": 0.25, "B": 0.5, "C": 0.25})
    # 40 % first (A), 40 % last (B), 20 % shared by B and C in the middle
    assert credit(api("position_based")) == approx({"A": 0.4, "B": 0.1 + 0.4, "C": 0.1})
    weights = {age: 2 ** (-age / 7) for age in (4, 3, 2, 1)}
    total = sum(weights.values())
    expected = {"A": weights[4] / total, "B": (weights[3] + weights[1]) / total, "C": weights[2] / total}
    assert credit(api("time_decay")) == approx(expected)
    assert revenue(api("time_decay")) == pytest.approx({k: round(v * 50, 2) for k, v in expected.items()}, abs=0.011)


def test_markov_removal_effects_by_hand(acme: Any, api: Any) -> None:
    # Paths: u1 A>B convert, u2 A (no conversion), u3 B convert.
    # P(conv) = 2/3 * 1/2 + 1/3 = 2/3; without A: 1/3 (RE 0.5); without B: 0 (RE 1).
    # Shares 1/3 : 2/3 of the 2 attributed conversions.
    insert_events(
        acme,
        [
            imp(-5, "A", "u1"),
            imp(-4, "B", "u1"),
            conv(0, "u1", value=30.0),
            imp(-5, "A", "u2"),
            imp(-2, "B", "u3"),
            conv(0, "u3", value=60.0),
        ],
    )
    body = api("markov")
    assert credit(body) == approx({"A": 2 / 3, "B": 4 / 3})
    assert revenue(body) == pytest.approx({"A": 30.0, "B": 60.0}, abs=0.01)  # shares of 90
    effects = {row["key"]: row["removal_effect"] for row in body["rows"]}
    assert effects == approx({"A": 0.5, "B": 1.0})
    assert body["paths"] == {"converting": 2, "non_converting": 1, "touches": 3, "mean_length": 1.5}


def test_markov_repeated_key_is_one_state_visit(acme: Any, api: Any) -> None:
    # A>A>B converts, B alone does not: repeats collapse, so this is the chain A>B>conv, B>null.
    insert_events(acme, [imp(-6, "A"), imp(-5, "A"), imp(-4, "B"), conv(0), imp(-3, "B", "u2")])
    # start->A 1/2, start->B 1/2; A->B 1; B->conv 1/2, B->null 1/2. P = 1/2*1/2 + 1/2*1/2 = 1/2
    # without A: 1/4 (RE 1/2); without B: 0 (RE 1) -> shares 1/3, 2/3 of 1 conversion
    assert credit(api("markov")) == approx({"A": 1 / 3, "B": 2 / 3})


def test_ties_in_time_follow_file_order_and_a_touch_at_the_conversion_instant_counts(acme: Any, api: Any) -> None:
    insert_events(acme, [imp(-2, "B"), imp(-2, "A"), imp(0, "C"), conv(0)])
    assert credit(api("first_touch")) == approx({"B": 1.0})  # same second: the earlier row of the file first
    assert credit(api("last_touch")) == approx({"C": 1.0})  # same instant as the conversion: still before it
    assert credit(api("linear")) == approx({"A": 1 / 3, "B": 1 / 3, "C": 1 / 3})


def test_an_impression_and_a_click_at_the_same_instant_keep_file_order(acme: Any, api: Any) -> None:
    insert_events(acme, [clk(-2, "CLICK"), imp(-2, "IMPRESSION"), conv(0)])
    assert credit(api("first_touch")) == approx({"CLICK": 1.0})
    assert credit(api("last_touch")) == approx({"IMPRESSION": 1.0})


def test_touches_outside_the_lookback_window_are_left_out(acme: Any, api: Any) -> None:
    insert_events(acme, [imp(-24 * 31, "OLD"), imp(-24 * 30, "EDGE"), imp(-1, "NEW"), conv(0)])
    assert credit(api("linear")) == approx({"EDGE": 0.5, "NEW": 0.5})  # exactly 30 days old: inside
    assert credit(api("first_touch", lookback_days=31)) == approx({"OLD": 1.0})
    assert credit(api("first_touch", lookback_days=1)) == approx({"NEW": 1.0})


def test_conversions_without_user_id_or_without_touches_are_unattributed(acme: Any, api: Any) -> None:
    insert_events(
        acme,
        [
            conv(-1, "", value=10.0),  # no user id
            conv(-2, "lonely", value=20.0),  # a path with only a conversion
            imp(-24 * 40, "A", "late"),  # a touch outside the window: no touch in it
            conv(-3, "late", value=40.0),
            imp(-2, "A", "u1"),
            conv(0, "u1", value=5.0),
        ],
    )
    for model in ("first_touch", "markov"):
        body = api(model)
        assert credit(body) == approx({"A": 1.0})
        assert body["totals"]["conversions"] == 1
        assert body["totals"]["all_conversions"] == 4
        assert body["unattributed"] == {
            "conversions": 3,
            "revenue": 70.0,
            "no_user_id": 1,
            "no_touch_in_window": 2,
        }


def test_only_conversions_in_the_range_are_attributed(acme: Any, api: Any) -> None:
    yesterday = DAY - dt.timedelta(days=1)
    insert_events(acme, [imp(-30, "A"), conv(-20, value=1.0), imp(-2, "B", "u2"), conv(0, "u2", value=2.0)])
    assert credit(api("last_touch")) == approx({"B": 1.0})
    assert credit(api("last_touch", start=yesterday, end=yesterday)) == approx({"A": 1.0})
    assert credit(api("last_touch", start=yesterday)) == approx({"A": 1.0, "B": 1.0})


def test_a_second_conversion_does_not_reuse_the_first_conversions_touches(acme: Any, api: Any) -> None:
    insert_events(acme, [imp(-10, "A"), conv(-8, value=10.0), imp(-5, "B"), conv(-1, value=20.0), conv(0, value=5.0)])
    body = api("linear")
    assert credit(body) == approx({"A": 1.0, "B": 1.0})
    assert revenue(body) == approx({"A": 10.0, "B": 20.0})
    # The third conversion (right after the second) has no touch left: unattributed, not silent.
    assert body["unattributed"]["no_touch_in_window"] == 1
    assert body["unattributed"]["revenue"] == 5.0


def test_first_conversion_before_the_range_still_consumes_its_touches(acme: Any, api: Any) -> None:
    insert_events(acme, [imp(-40, "A"), conv(-30), imp(-2, "B"), conv(0)])
    assert credit(api("first_touch")) == approx({"B": 1.0})


def test_cost_and_roas_per_key(acme: Any, api: Any) -> None:
    insert_events(
        acme,
        [
            imp(-30, "A", cost=5.0),  # yesterday: outside the range, so not in the cost
            imp(-3, "A", cost=2.0),
            imp(-2, "B", "u2", cost=4.0),
            imp(-1, "B", "", cost=1.0),  # no user: still media cost
            conv(0, value=10.0),
        ],
    )
    rows = {row["key"]: row for row in api("last_touch")["rows"]}
    assert rows["A"]["cost"] == 2.0 and rows["A"]["revenue"] == 10.0 and rows["A"]["roas"] == 5.0
    assert rows["B"]["cost"] == 5.0 and rows["B"]["conversions"] == 0 and rows["B"]["roas"] == 0.0
    body = api("last_touch")
    assert body["totals"]["cost"] == 7.0 and body["totals"]["roas"] == pytest.approx(10 / 7, abs=1e-4)


def test_roas_is_null_without_cost(acme: Any, api: Any) -> None:
    insert_events(acme, [imp(-1, "A"), conv(0)])
    assert api("first_touch")["rows"][0]["roas"] is None


def test_group_by_line_item_and_audience_with_names(acme: Any, api: Any) -> None:
    from django_tenants.utils import schema_context

    from tests.factories import AudienceFactory, StrategyFactory

    with schema_context(acme.schema_name):
        StrategyFactory(
            campaign__name="Acme spring", campaign__source="reds", campaign__external_id="ttd-9", name="li-7"
        )
        audience = AudienceFactory(name="Decision makers")
    insert_events(
        acme,
        [
            imp(-3, "ttd-9", line_item="li-7", audience=str(audience.pk)),
            imp(-2, "ttd-x", line_item="li-8", audience="seg-42"),
            conv(0),
        ],
    )
    names = {row["key"]: row["name"] for row in api("linear")["rows"]}
    assert names == {"ttd-9": "Acme spring", "ttd-x": "ttd-x"}
    names = {row["key"]: row["name"] for row in api("linear", group_by="line_item")["rows"]}
    assert names == {"li-7": "li-7 (Acme spring)", "li-8": "li-8"}
    body = api("first_touch", group_by="audience")
    assert {row["key"]: row["name"] for row in body["rows"]} == {
        str(audience.pk): "Decision makers",
        "seg-42": "seg-42",
    }
    assert credit(body) == approx({str(audience.pk): 1.0})


def test_model_all_returns_every_model_with_the_same_totals(acme: Any, api: Any) -> None:
    insert_events(acme, [imp(-3, "A"), imp(-2, "B"), conv(0)])
    body = api("all")
    assert body["model"] == "all"
    assert set(body["models"]) == {"first_touch", "last_touch", "linear", "time_decay", "position_based", "markov"}
    for name, result in body["models"].items():
        assert result["model"] == name
        assert sum(row["conversions"] for row in result["rows"]) == pytest.approx(1.0, abs=1e-5)
    assert body["totals"]["conversions"] == 1


def test_new_events_are_seen_through_the_cache(acme: Any, api: Any) -> None:
    insert_events(acme, [imp(-3, "A"), conv(0)])
    assert credit(api("last_touch")) == approx({"A": 1.0})
    from django.db import connection
    from django_tenants.utils import schema_context

    with schema_context(acme.schema_name), connection.cursor() as cursor:  # no cache.clear() this time
        cursor.execute(
            "INSERT INTO ingestion_store_redsevent (event_date, event_timestamp, advertiser_id, campaign_id, "
            "line_item_id, event_type, cost_usd, audience_id, user_id, user_id_type, conversion_value, file_id, "
            "line_no) VALUES (%s, %s, 'acme01', 'B', 'li', 'impression', 0, '', 'u9', 'UID2', NULL, 0, 1), "
            "(%s, %s, 'acme01', 'B', 'li', 'conversion', 0, '', 'u9', 'UID2', 1, 0, 2)",
            [DAY, dt.datetime(2026, 11, 10, 1, tzinfo=dt.UTC), DAY, dt.datetime(2026, 11, 10, 2, tzinfo=dt.UTC)],
        )
    assert credit(api("last_touch")) == approx({"A": 1.0, "B": 1.0})
