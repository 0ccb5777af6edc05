"""The attribution API: response shape, bad input as contract 400s, tenant isolation, token auth."""

from __future__ import annotations

from typing import Any

import pytest

from tests.attribution.helpers import DAY, conv, imp, insert_events

pytestmark = pytest.mark.django_db

API = "/o/acme/api/v1/attribution"
GOOD = {"model": "linear", "start": DAY.isoformat(), "end": DAY.isoformat()}


def test_contract_shape(acme: Any, login: Any, acme_marketer: Any) -> None:
    insert_events(acme, [imp(-2, "A", cost=1.5), imp(-1, "B"), conv(0, value=12.5)])
    body = login(acme_marketer).get(API, GOOD).json()
    assert body["model"] == "linear"
    assert set(body) >= {"model", "rows", "totals", "unattributed"}
    assert set(body["rows"][0]) >= {"key", "name", "conversions", "revenue", "cost", "roas"}
    assert body["rows"][0] == {
        "key": "A",
        "name": "A",
        "conversions": 0.5,
        "revenue": 6.25,
        "cost": 1.5,
        "roas": pytest.approx(4.1667),
        "touches": 1,
    }
    assert body["totals"] == {
        "conversions": 1,
        "revenue": 12.5,
        "cost": 1.5,
        "roas": pytest.approx(8.3333),
        "all_conversions": 1,
    }
    assert body["unattributed"] == {"conversions": 0, "revenue": 0.0, "no_user_id": 0, "no_touch_in_window": 0}
    assert body["params"] == {
        "start": DAY.isoformat(),
        "end": DAY.isoformat(),
        "group_by": "campaign",
        "lookback_days": 30,
        "half_life_days": 7.0,
    }


def test_a_range_without_events_is_empty_not_an_error(acme: Any, login: Any, acme_marketer: Any) -> None:
    body = login(acme_marketer).get(API, {**GOOD, "start": "2020-01-01", "end": "2020-01-31"}).json()
    assert body["rows"] == []
    assert body["totals"]["conversions"] == 0 and body["totals"]["roas"] is None
    assert body["unattributed"]["conversions"] == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2026-11-10", "end": "2026-11-01"}, "end"),  # reversed
        ({"start": "", "end": "2026-11-01"}, "start"),  # unbounded
        ({"start": None}, "start"),  # missing
        ({"end": None}, "end"),
        ({"start": "2024-01-01", "end": "2026-11-01"}, "end"),  # too long to be bounded
        ({"start": "2026-13-01"}, "start"),
        ({"model": "shapley"}, "model"),
        ({"model": None}, "model"),
        ({"group_by": "creative"}, "group_by"),
        ({"lookback_days": "0"}, "lookback_days"),
        ({"lookback_days": "91"}, "lookback_days"),
        ({"lookback_days": "ten"}, "lookback_days"),
        ({"half_life_days": "0"}, "half_life_days"),
        ({"half_life_days": "-1"}, "half_life_days"),
        ({"half_life_days": "nan"}, "half_life_days"),
        ({"half_life_days": "inf"}, "half_life_days"),
    ],
)
def test_bad_input_is_a_400_with_the_contract_error_body(
    params: dict[str, Any], field: str, login: Any, acme_marketer: Any
) -> None:
    query = {key: value for key, value in {**GOOD, **params}.items() if value is not None}
    response = login(acme_marketer).get(API, query)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["details"]["fields"], error
    assert error["message"].startswith(field)


def test_globex_marketer_cannot_read_acme(acme: Any, login: Any, globex_marketer: Any) -> None:
    insert_events(acme, [imp(-1, "A"), conv(0)])
    response = login(globex_marketer).get(API, GOOD)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_anonymous_is_refused(client: Any) -> None:
    response = client.get(API, GOOD)
    assert response.status_code in (401, 403)


def test_each_org_sees_only_its_own_events(
    acme: Any, globex: Any, login: Any, acme_marketer: Any, globex_marketer: Any
) -> None:
    # Same user ids, same campaign ids in both schemas: paths must never mix.
    insert_events(acme, [imp(-3, "ACME-CANARY", "shared-user", cost=1.0), conv(0, "shared-user", value=10.0)])
    insert_events(
        globex,
        [
            imp(-2, "GLOBEX-CANARY", "shared-user", cost=9.0),
            imp(-1, "GLOBEX-CANARY", "shared-user"),
            conv(0, "shared-user", value=99.0),
            conv(0, "", value=5.0),
        ],
    )
    for model in ("last_touch", "all"):
        acme_body = login(acme_marketer).get(API, {**GOOD, "model": model}).json()
        text = str(acme_body)
        assert "GLOBEX" not in text and "99" not in text
        globex_body = login(globex_marketer).get("/o/globex/api/v1/attribution", {**GOOD, "model": model}).json()
        assert "ACME" not in str(globex_body)
    acme_body = login(acme_marketer).get(API, {**GOOD, "model": "last_touch"}).json()
    assert [(r["key"], r["conversions"], r["cost"]) for r in acme_body["rows"]] == [("ACME-CANARY", 1.0, 1.0)]
    assert acme_body["unattributed"]["conversions"] == 0
    globex_body = login(globex_marketer).get("/o/globex/api/v1/attribution", {**GOOD, "model": "last_touch"}).json()
    assert [(r["key"], r["conversions"], r["cost"]) for r in globex_body["rows"]] == [("GLOBEX-CANARY", 1.0, 9.0)]
    assert globex_body["unattributed"]["no_user_id"] == 1


def test_cached_results_never_cross_orgs(acme: Any, globex: Any, login: Any, super_admin: Any) -> None:
    """Same parameters, same data stamp shape: the cache key carries the schema."""
    insert_events(acme, [imp(-1, "ACME-ONLY"), conv(0)])
    insert_events(globex, [imp(-1, "GLOBEX-ONLY"), conv(0)])
    client = login(super_admin)
    for _ in range(2):  # the second round is served from the cache
        assert [r["key"] for r in client.get(API, GOOD).json()["rows"]] == ["ACME-ONLY"]
        assert [r["key"] for r in client.get("/o/globex/api/v1/attribution", GOOD).json()["rows"]] == ["GLOBEX-ONLY"]


def test_api_token_works(acme: Any, acme_marketer: Any, client: Any) -> None:
    from tenants.services import api_token_create

    insert_events(acme, [imp(-1, "A"), conv(0)])
    _, raw = api_token_create(user=acme_marketer, name="attribution test", actor=acme_marketer)
    response = client.get(API, GOOD, HTTP_AUTHORIZATION=f"Token {raw}")
    assert response.status_code == 200
    assert response.json()["rows"][0]["key"] == "A"


def test_listed_in_the_openapi_schema(client: Any) -> None:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    operation = response.json()["paths"]["/o/{slug}/api/v1/attribution"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"model", "start", "end", "group_by", "lookback_days"}
