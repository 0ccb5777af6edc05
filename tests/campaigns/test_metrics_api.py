"""GET /o/<slug>/api/v1/metrics: grouping, totals, A.1 precision, errors, isolation."""

from __future__ import annotations

import pytest

from tests.ingestion.helpers import SURFSIDE_HEADER, api_metrics, ingest, set_cpm, write_csv

pytestmark = pytest.mark.django_db

ROWS = [
    # date, campaign, strategy, placement, creative, impressions, clicks, conversions, revenue
    ["2026-11-20", "Alpha", "S1", "P1", "C1", "1234", "13", "2", "100.10"],
    ["2026-11-20", "Alpha", "S1", "P1", "C2", "1000", "0", "0", "0"],
    ["2026-11-21", "Beta", "S2", "P2", "C3", "777", "7", "1", "9.99"],
    ["2026-11-21", "Alpha", "S1", "P1", "C1", "0", "0", "0", "0"],
]


@pytest.fixture
def loaded(acme, tmp_path):
    set_cpm(acme, "12.5")
    ingest("surfside", str(write_csv(tmp_path / "m.csv", SURFSIDE_HEADER, ROWS)), "--org", "acme")


def test_totals_follow_appendix_a1_with_exact_decimal_strings(loaded, acme, acme_marketer, login):
    body = api_metrics(login(acme_marketer), acme, start="2026-11-20", end="2026-11-21", group_by="date").json()
    # spend = (1234 + 1000 + 777) / 1000 x 12.5 = 37.6375 -> "37.64"
    assert body["totals"] == {
        "impressions": 3011,
        "clicks": 20,
        "conversions": 3,
        "conversion_revenue": "110.09",
        "spend": "37.64",
        "ctr": "0.664231",  # 20 / 3011 x 100 = 0.66423115...
        "cpc": "1.8819",  # 37.6375 / 20 = 1.881875
        "cpa": "12.5458",  # 37.6375 / 3 = 12.54583...
        "roas": "292.5008",  # 110.09 / 37.6375 x 100 = 292.50083...
    }
    by_date = {row["date"]: row for row in body["rows"]}
    assert by_date["2026-11-20"]["spend"] == "27.93"  # 2234 x 12.5 / 1000 = 27.925 (half up)
    assert by_date["2026-11-21"]["impressions"] == 777


def test_division_by_zero_gives_null(loaded, acme, acme_marketer, login):
    body = api_metrics(login(acme_marketer), acme, start="2026-11-20", end="2026-11-21", group_by="creative").json()
    c2 = next(row for row in body["rows"] if row["creative"] == "C2")
    assert c2["cpc"] is None and c2["cpa"] is None and c2["ctr"] == "0.000000" and c2["roas"] == "0.0000"
    assert {"campaign_id", "campaign", "strategy_id", "strategy", "placement_id", "placement", "creative_id"} <= set(c2)


def test_group_by_campaign_and_source(loaded, acme, acme_marketer, login):
    client = login(acme_marketer)
    rows = api_metrics(client, acme, start="2026-11-20", end="2026-11-21", group_by="campaign").json()["rows"]
    assert [(r["campaign"], r["impressions"]) for r in rows] == [("Alpha", 2234), ("Beta", 777)]
    rows = api_metrics(client, acme, start="2026-11-20", end="2026-11-21", group_by="source").json()["rows"]
    assert rows == [{**rows[0], "source": "surfside", "impressions": 3011}]
    rows = api_metrics(client, acme, start="2026-11-20", end="2026-11-20", group_by="date,campaign").json()["rows"]
    assert [(r["date"], r["campaign"]) for r in rows] == [("2026-11-20", "Alpha")]


def test_empty_range_gives_zero_totals(loaded, acme, acme_marketer, login):
    body = api_metrics(login(acme_marketer), acme, start="2025-01-01", end="2025-01-31").json()
    assert body["rows"] == [] and body["totals"]["spend"] == "0.00" and body["totals"]["ctr"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"end": "2026-11-21"}, "start"),
        ({"start": "2026-13-01", "end": "2026-11-21"}, "start"),
        ({"start": "2026-11-21", "end": "2026-11-20"}, "end"),
        ({"start": "2026-11-20", "end": "2026-11-21", "group_by": "planet"}, "group_by"),
        ({"start": "2026-11-20", "end": "2026-11-21", "source": "myspace"}, "source"),
    ],
)
def test_bad_parameters_give_400_in_the_contract_shape(acme, acme_marketer, login, params, field):
    response = api_metrics(login(acme_marketer), acme, **params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and field in error["details"]["fields"]


def test_other_org_sees_404_and_its_own_data_only(loaded, acme, globex, globex_marketer, login):
    client = login(globex_marketer)
    assert api_metrics(client, acme, start="2026-11-20", end="2026-11-21").status_code == 404
    body = api_metrics(client, globex, start="2026-11-20", end="2026-11-21").json()
    assert body["rows"] == [] and body["totals"]["impressions"] == 0


def test_token_auth_and_anonymous(loaded, acme, client):
    assert client.get(f"/o/{acme.slug}/api/v1/metrics", {"start": "2026-11-20", "end": "2026-11-21"}).status_code == 401
