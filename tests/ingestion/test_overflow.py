"""Issue 15 items 5-6: a value that does not fit its column is a quarantined row (line and reason) in
every media source, sums of same-key rows are checked (never wrapped), and the rest of the file loads."""

from __future__ import annotations

from typing import Any

import pytest
from django_tenants.utils import schema_context

from campaigns.models import DailyMetric
from ingestion.models import QuarantinedRow
from tenants.services import api_token_create
from tests.ingestion.helpers import SURFSIDE_HEADER, ingest, set_cpm, surfside_rows, write_csv
from tests.ingestion.test_facebook import EXPORT_HEADER, EXPORT_ROWS
from tests.ingestion.test_reds import events, write

pytestmark = pytest.mark.django_db

BIG = "99999999999999999999"  # past bigint
MAX = "9223372036854775807"  # bigint's largest: fits alone, overflows summed


@pytest.fixture
def cpm(acme: Any) -> None:
    set_cpm(acme, "10")


def reasons(run_id: int) -> dict[int, str]:
    return dict(QuarantinedRow.objects.filter(run_id=run_id).values_list("line_no", "reason"))


def row(impressions: str = "1000", clicks: str = "10", revenue: str = "5", placement: str = "P") -> list[str]:
    return ["2026-11-20", "Camp", "Strat", placement, "Creative", impressions, clicks, "1", revenue]


def test_surfside_value_past_bigint_is_quarantined_and_the_rest_loads(
    acme: Any, cpm: None, tmp_path: Any, capfd: Any
) -> None:
    rows = [*surfside_rows(n=3), row(impressions=BIG, placement="Huge")]
    result = ingest("surfside", str(write_csv(tmp_path / "s.csv", SURFSIDE_HEADER, rows)), "--org", "acme")
    assert (result["status"], result["rows_read"], result["rows_loaded"], result["rows_quarantined"]) == (
        "succeeded",
        4,
        3,
        1,
    )
    assert "Impressions" in reasons(result["run_id"])[5] and "too large" in reasons(result["run_id"])[5]
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize(
    ("value", "column"),
    [("1" + "0" * 14, "Conversion Revenue"), ("1" + "0" * 19, "Clicks"), ("1" + "0" * 19, "Conversions")],
)
def test_every_column_is_bounded(acme: Any, cpm: None, tmp_path: Any, value: str, column: str) -> None:
    bad = row()
    bad[SURFSIDE_HEADER.index(column)] = value
    result = ingest(
        "surfside", str(write_csv(tmp_path / "s.csv", SURFSIDE_HEADER, [*surfside_rows(n=2), bad])), "--org", "acme"
    )
    assert (result["rows_loaded"], result["rows_quarantined"]) == (2, 1)
    assert "too large" in reasons(result["run_id"])[4]


def test_bigint_max_fits_alone(acme: Any, tmp_path: Any) -> None:
    set_cpm(acme, "0.0001")  # spend = 9.2e14: still fits numeric(22, 7)
    result = ingest(
        "surfside", str(write_csv(tmp_path / "s.csv", SURFSIDE_HEADER, [row(impressions=MAX)])), "--org", "acme"
    )
    assert result["rows_loaded"] == 1
    with schema_context(acme.schema_name):
        assert DailyMetric.objects.get().impressions == int(MAX)


def test_same_key_rows_summed_past_bigint_are_quarantined_never_wrapped(
    acme: Any, cpm: None, tmp_path: Any, acme_marketer: Any
) -> None:
    set_cpm(acme, "0.0001")
    rows = [*surfside_rows(n=2), row(impressions=MAX), row(impressions=MAX)]
    result = ingest("surfside", str(write_csv(tmp_path / "s.csv", SURFSIDE_HEADER, rows)), "--org", "acme")
    assert (result["status"], result["rows_loaded"], result["rows_quarantined"]) == ("succeeded", 2, 2)
    found = reasons(result["run_id"])
    assert set(found) == {4, 5} and all("impressions summed" in r and "lines 4, 5" in r for r in found.values())
    with schema_context(acme.schema_name):
        assert not DailyMetric.objects.filter(impressions__lt=0).exists()
        assert not DailyMetric.objects.filter(placement__name="P").exists()
    from django.test import Client

    _, token = api_token_create(user=acme_marketer, name="m")
    body = (
        Client(HTTP_AUTHORIZATION=f"Token {token}")
        .get("/o/acme/api/v1/metrics", {"start": "2026-11-20", "end": "2026-11-20"})
        .json()
    )
    assert body["totals"]["impressions"] >= 0 and not str(body["totals"]["spend"]).startswith("-")


def test_a_derived_figure_that_does_not_fit_is_quarantined(acme: Any, cpm: None, tmp_path: Any) -> None:
    rows = [*surfside_rows(n=1), row(impressions="900000000000000000")]  # spend 9e15 > numeric(22, 7)
    result = ingest("surfside", str(write_csv(tmp_path / "s.csv", SURFSIDE_HEADER, rows)), "--org", "acme")
    assert (result["rows_loaded"], result["rows_quarantined"]) == (1, 1)
    assert "SPEND" in reasons(result["run_id"])[3]


def test_facebook_and_vibe_values_too_large(acme: Any, cpm: None, tmp_path: Any) -> None:
    bad = list(EXPORT_ROWS[1])
    bad[EXPORT_HEADER.index("Impressions")] = BIG
    result = ingest(
        "facebook", str(write_csv(tmp_path / "f.csv", EXPORT_HEADER, [EXPORT_ROWS[0], bad])), "--org", "acme"
    )
    assert (result["rows_loaded"], result["rows_quarantined"]) == (1, 1) and "too large" in reasons(result["run_id"])[3]
    vibe = tmp_path / "vibe.csv"
    vibe.write_text(
        "date,campaign_name,strategy_name,placement_name,creative_name,impressions,clicks,conversions,revenue\n"
        f"2026-11-20,CTV,Prime,Hulu,Spot,1000,5,1,10\n2026-11-20,CTV,Prime,Roku,Spot,{BIG},6,0,0\n"
    )
    result = ingest("vibe", str(vibe), "--org", "acme")
    assert (result["rows_loaded"], result["rows_quarantined"]) == (1, 1) and "too large" in reasons(result["run_id"])[3]


def test_reds_cost_too_large(acme: Any, cpm: None, tmp_path: Any) -> None:
    rows = events("acme01")
    rows[1][5] = "1" + "0" * 12  # cost_usd is numeric(18, 6)
    result = ingest("reds", str(write(tmp_path, "r.psv", rows)))
    assert (result["status"], result["rows_loaded"], result["rows_quarantined"]) == ("succeeded", 4, 1)
    assert "cost_usd is too large" in reasons(result["run_id"])[3]


def test_reds_sums_that_do_not_fit_are_not_rolled_up_and_say_so(acme: Any, cpm: None, tmp_path: Any) -> None:
    rows = events("acme01")
    rows[0][5] = rows[1][5] = "999999999999"  # each fits numeric(18, 6); their sum for one line item does not
    result = ingest("reds", str(write(tmp_path, "r.psv", rows)))
    assert (result["status"], result["rows_loaded"]) == ("succeeded", 5)
    assert "too large to store; not rolled up" in result["error"]
    with schema_context(acme.schema_name):
        assert {m.strategy.name for m in DailyMetric.objects.select_related("strategy")} == {"li2"}
        assert not DailyMetric.objects.filter(media_cost__lt=0).exists()


def test_reds_roas_past_its_column_is_null_not_an_error(acme: Any, tmp_path: Any) -> None:
    set_cpm(acme, "0.0001")  # one impression costs 1e-7: a 49.90 conversion is a ROAS of ~5e10 %, a big one 1e20
    rows = events("acme01")
    rows[4][9] = "99999999999999"  # conversion_value fits numeric(18, 4)
    result = ingest("reds", str(write(tmp_path, "r.psv", rows)))
    assert result["status"] == "succeeded"
    with schema_context(acme.schema_name):
        li1 = DailyMetric.objects.get(strategy__name="li1")
        assert li1.roas is None and li1.conversion_revenue == 99999999999999
