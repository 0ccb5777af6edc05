"""TTD REDS event files: delimiters, gzip, routing by advertiser id, day partitions, roll-up."""

from __future__ import annotations

import gzip
from decimal import Decimal

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from ingestion.ingestion_store.models import RedsEvent
from ingestion.models import QuarantinedRow
from tests.factories import CampaignFactory
from tests.ingestion.helpers import ingest, ingest_failing, metrics, set_cpm

pytestmark = pytest.mark.django_db

HEADER = [
    "event_timestamp",
    "advertiser_id",
    "campaign_id",
    "line_item_id",
    "event_type",
    "cost_usd",
    "audience_id",
    "user_id",
    "user_id_type",
    "conversion_value",
]


def events(advertiser: str, day: str = "2026-11-20", hour: int = 5) -> list[list[str]]:
    ts = f"{day}T{hour:02d}:%02d:00Z"
    return [
        [ts % 1, advertiser, "cmpA", "li1", "impression", "0.002", "aud1", "u1", "UID2", ""],
        [ts % 2, advertiser, "cmpA", "li1", "impression", "0.002", "aud1", "u2", "TDID", ""],
        [ts % 3, advertiser, "cmpA", "li1", "click", "0", "aud1", "u1", "UID2", ""],
        [ts % 4, advertiser, "cmpA", "li2", "impression", "0.003", "aud2", "u3", "MAID", ""],
        [ts % 5, advertiser, "cmpA", "li1", "conversion", "0", "aud1", "u1", "UID2", "49.90"],
    ]


def write(tmp_path, name: str, rows: list[list[str]], delimiter: str = "|", gz: bool = False):
    text = "\n".join(delimiter.join(r) for r in [HEADER, *rows]) + "\n"
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return path


@pytest.fixture
def cpms(acme, globex):
    set_cpm(acme, "10")
    set_cpm(globex, "20")


def stored_events(org) -> list[RedsEvent]:
    with schema_context(org.schema_name):
        return list(RedsEvent.objects.order_by("event_timestamp"))


@pytest.mark.parametrize(("delimiter", "gz"), [("|", True), (",", False), ("\t", False), ("|", False)])
def test_file_is_routed_by_advertiser_and_unknown_ones_are_quarantined(cpms, acme, globex, tmp_path, delimiter, gz):
    rows = events("acme01") + events("GLOBEX01")[:2] + [events("stranger")[0]]
    path = write(tmp_path, "reds-2026112005.csv" + (".gz" if gz else ""), rows, delimiter, gz)
    result = ingest("reds", str(path))
    assert (result["status"], result["rows_read"], result["rows_loaded"], result["rows_quarantined"]) == (
        "succeeded",
        8,
        7,
        1,
    )
    assert result["routed"] == {"acme": 5, "globex": 2}
    (bad,) = QuarantinedRow.objects.filter(run_id=result["run_id"])
    assert bad.line_no == 9 and "unknown TTD advertiser id 'stranger'" in bad.reason
    acme_events = stored_events(acme)
    assert len(acme_events) == 5 and len(stored_events(globex)) == 2
    first = acme_events[0]
    assert (first.campaign_id, first.line_item_id, first.event_type, first.user_id, first.user_id_type) == (
        "cmpA",
        "li1",
        "impression",
        "u1",
        "UID2",
    )
    conversion = acme_events[-1]
    assert conversion.conversion_value == Decimal("49.90") and conversion.audience_id == "aud1"


def test_events_are_partitioned_by_day(cpms, acme, tmp_path):
    rows = events("acme01", "2026-11-20") + events("acme01", "2026-11-21")
    ingest("reds", str(write(tmp_path, "two-days.psv", rows)))
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace
               WHERE p.relname = 'ingestion_store_redsevent' AND n.nspname = %s ORDER BY 1""",
            [acme.schema_name],
        )
        assert [row[0] for row in cursor.fetchall()] == [
            "ingestion_store_redsevent_p20261120",
            "ingestion_store_redsevent_p20261121",
        ]


def test_daily_roll_up_into_metrics_with_cpm_spend_and_cost(cpms, acme, tmp_path):
    ingest("reds", str(write(tmp_path, "h05.psv", events("acme01", hour=5))))
    ingest("reds", str(write(tmp_path, "h06.psv", events("acme01", hour=6))))
    rows = metrics(acme, source="reds")
    by_li = {m.strategy.name: m for m in rows}
    assert set(by_li) == {"li1", "li2"}
    li1 = by_li["li1"]
    assert (li1.impressions, li1.clicks, li1.conversions) == (4, 2, 2)  # two hourly files of the same day
    assert li1.conversion_revenue == Decimal("99.80")
    assert li1.media_cost == Decimal("0.008")
    assert li1.spend == Decimal("0.04")  # 4 / 1000 x 10
    assert li1.campaign.name == "cmpA" and li1.campaign.source == "reds" and li1.placement.name == "(all)"


def test_same_file_twice_does_not_double_events_or_metrics(cpms, acme, tmp_path):
    path = write(tmp_path, "h05.psv", events("acme01"))
    ingest("reds", str(path))
    again = ingest("reds", str(path))
    assert again["rows_loaded"] == 5
    assert len(stored_events(acme)) == 5
    assert sum(m.impressions for m in metrics(acme, source="reds")) == 3


def test_roll_up_goes_under_the_campaign_with_the_ttd_id(cpms, acme, tmp_path):
    with schema_context(acme.schema_name):
        managed = CampaignFactory(name="Acme Q4 awareness (TTD)", external_id="cmpA")
    ingest("reds", str(write(tmp_path, "h05.psv", events("acme01"))))
    assert {m.campaign_id for m in metrics(acme, source="reds")} == {managed.pk}


def test_bad_rows_are_quarantined_with_reasons(cpms, acme, tmp_path):
    good = events("acme01")[0]
    rows = [
        good,
        ["yesterday", *good[1:]],
        [good[0], "acme01", "cmpA", "li1", "view", *good[5:]],
        [good[0], "acme01", "cmpA", "li1", "impression", "-1", *good[6:]],
        [good[0], "acme01", "cmpA", "li1", "impression", "0.1", "a", "u", "EMAIL", ""],
        [good[0], "acme01", "", "li1", "impression", "0.1", "a", "u", "UID2", ""],
        good[:5],  # ragged
    ]
    result = ingest("reds", str(write(tmp_path, "bad.psv", rows)))
    assert (result["rows_read"], result["rows_loaded"], result["rows_quarantined"]) == (7, 1, 6)
    reasons = {q.line_no: q.reason for q in QuarantinedRow.objects.filter(run_id=result["run_id"])}
    assert "is not a timestamp" in reasons[3]
    assert "'view' is not impression, click or conversion" in reasons[4]
    assert "cost_usd is negative" in reasons[5]
    assert "'EMAIL' is not UID2, TDID, MAID or IP" in reasons[6]
    assert "campaign_id is empty" in reasons[7]
    assert "expected 10 fields, found 5" in reasons[8]


def test_missing_cpm_keeps_events_and_warns(acme, tmp_path):
    result = ingest("reds", str(write(tmp_path, "h05.psv", events("acme01"))))
    assert result["status"] == "succeeded" and "no CPM rate in force on 2026-11-20" in result["error"]
    assert len(stored_events(acme)) == 5 and metrics(acme, source="reds") == []


def test_only_unknown_advertisers_fails(cpms, tmp_path):
    message, result = ingest_failing("reds", str(write(tmp_path, "x.psv", events("nobody"))))
    assert "no event of x.psv could be loaded" in message and result["rows_quarantined"] == 5


def test_missing_required_column(cpms, tmp_path):
    path = tmp_path / "cols.psv"
    path.write_text("event_timestamp|advertiser_id\n2026-11-20T00:00:00Z|acme01\n")
    message, _ = ingest_failing("reds", str(path))
    assert "missing required columns" in message and "'campaign id'" in message


def test_a_day_that_loses_its_cpm_loses_its_derived_rollup_too(acme, tmp_path):
    """Re-running a day after its CPM was removed deletes the day's metrics; the dashboard's rollup (a listener of
    the `metrics_loaded` hook) must drop them as well, not keep the old spend."""
    from campaigns.models import CpmRate
    from reporting.models import DailyRollup

    set_cpm(acme, "10")
    path = write(tmp_path, "h05.psv", events("acme01"))
    ingest("reds", str(path))
    with schema_context(acme.schema_name):
        assert DailyRollup.objects.filter(source="reds").exists()
        CpmRate.objects.all().delete()
    result = ingest("reds", str(path))
    assert "no CPM rate in force on 2026-11-20" in result["error"]
    assert metrics(acme, source="reds") == []
    with schema_context(acme.schema_name):
        assert not DailyRollup.objects.filter(source="reds").exists()
