"""Surfside files through `ingest --json`: exact counts, CPM spend, A.1 metrics, bad input."""

from __future__ import annotations

import pytest
from django.core import mail

from ingestion.models import IngestionRun, QuarantinedRow
from tests.ingestion.helpers import (
    DAY,
    SURFSIDE_HEADER,
    D,
    ingest,
    ingest_failing,
    metrics,
    set_cpm,
    surfside_rows,
    write_csv,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def cpm(acme):
    set_cpm(acme, "12.5")


def test_surfside_file_loads_with_exact_counts_and_cpm_spend(acme, cpm, tmp_path):
    path = write_csv(tmp_path / "media-report-2026-11-20.csv", SURFSIDE_HEADER, surfside_rows(n=4))
    result = ingest("surfside", str(path), "--org", "acme", "--date", DAY.isoformat())
    assert {k: result[k] for k in ("status", "rows_read", "rows_loaded", "rows_quarantined")} == {
        "status": "succeeded",
        "rows_read": 4,
        "rows_loaded": 4,
        "rows_quarantined": 0,
    }
    assert isinstance(result["run_id"], int)
    rows = metrics(acme, source="surfside")
    assert len(rows) == 4
    first = rows[0]  # Camp A / Strat 0 / Place 0 / Creative 0: 1234 impressions, 13 clicks, 0 conversions
    assert (first.campaign.name, first.strategy.name, first.placement.name, first.creative.name) == (
        "Camp A",
        "Strat 0",
        "Place 0",
        "Creative 0",
    )
    assert first.impressions == 1234 and first.clicks == 13 and first.conversions == 0
    assert first.cpm == D("12.5")
    assert first.spend == D("15.425")  # 1234 / 1000 x 12.5, exact
    assert first.ctr == D("1.053485")  # 13 / 1234 x 100 = 1.0534846...
    assert first.cpc == D("1.1865")  # 15.425 / 13 = 1.186538...
    assert first.cpa is None  # no conversions: division by zero
    assert first.roas == D("0")  # no revenue over a real spend
    assert first.campaign.source == "surfside"


def test_same_file_twice_replaces_exactly(acme, cpm, tmp_path):
    path = write_csv(tmp_path / "day.csv", SURFSIDE_HEADER, surfside_rows(n=6))
    ingest("surfside", str(path), "--org", "acme")
    second = ingest("surfside", str(path), "--org", "acme")
    assert second["rows_loaded"] == 6 and second["metrics_replaced"] == 6
    assert len(metrics(acme, source="surfside")) == 6
    assert sum(m.impressions for m in metrics(acme, source="surfside")) == sum(r[5] for r in surfside_rows(n=6))


def test_rerun_with_fewer_rows_removes_the_missing_ones(acme, cpm, tmp_path):
    ingest("surfside", str(write_csv(tmp_path / "a.csv", SURFSIDE_HEADER, surfside_rows(n=6))), "--org", "acme")
    ingest("surfside", str(write_csv(tmp_path / "b.csv", SURFSIDE_HEADER, surfside_rows(n=2))), "--org", "acme")
    assert len(metrics(acme, source="surfside")) == 2


def test_missing_columns_fail_the_run_with_a_clear_error_and_alert(acme, cpm, tmp_path):
    header = [h for h in SURFSIDE_HEADER if h not in ("Clicks", "Creative")]
    rows = [[v for i, v in enumerate(r) if SURFSIDE_HEADER[i] not in ("Clicks", "Creative")] for r in surfside_rows()]
    message, result = ingest_failing("surfside", str(write_csv(tmp_path / "x.csv", header, rows)), "--org", "acme")
    assert "missing required columns" in message and "'creative'" in message and "'clicks'" in message
    assert result is not None and result["status"] == "failed"
    assert metrics(acme) == []
    assert len(mail.outbox) == 1 and "ops@p360.test" in mail.outbox[0].to
    assert "Surfside ingestion failed" in mail.outbox[0].subject


def test_renamed_headers_known_aliases_load_unknown_names_fail(acme, cpm, tmp_path):
    aliases = [
        "date",
        "Campaign Name",
        "strategy_name",
        "Placement",
        "Creative",
        "Imps",
        "CLICKS",
        "Conversions",
        "Revenue",
    ]
    assert (
        ingest("surfside", str(write_csv(tmp_path / "a.csv", aliases, surfside_rows())), "--org", "acme")["rows_loaded"]
        == 4
    )
    renamed = [*SURFSIDE_HEADER[:5], "Views", *SURFSIDE_HEADER[6:]]
    message, _ = ingest_failing(
        "surfside", str(write_csv(tmp_path / "b.csv", renamed, surfside_rows())), "--org", "acme"
    )
    assert "'impressions'" in message and "Views" in message


def test_thousands_separators_currency_signs_and_currency_suffixed_headers(acme, cpm, tmp_path):
    header = [*SURFSIDE_HEADER[:8], "Conversion Revenue (USD)"]
    rows = [[DAY.isoformat(), "C", "S", "P", "K", "1,234,567", "1,000", "12", "$1,250.50"]]
    result = ingest("surfside", str(write_csv(tmp_path / "a.csv", header, rows)), "--org", "acme")
    assert result["rows_loaded"] == 1
    (row,) = metrics(acme)
    assert (row.impressions, row.clicks, row.conversions, row.conversion_revenue) == (1234567, 1000, 12, D("1250.50"))
    assert row.spend == D("15432.0875")


def test_negative_non_numeric_and_bad_dates_are_quarantined_with_line_and_reason(acme, cpm, tmp_path):
    rows = surfside_rows(n=3)
    rows += [
        [DAY.isoformat(), "C", "S", "P", "bad1", "-5", "1", "0", "0"],
        [DAY.isoformat(), "C", "S", "P", "bad2", "lots", "1", "0", "0"],
        ["yesterday", "C", "S", "P", "bad3", "5", "1", "0", "0"],
        [DAY.isoformat(), "C", "S", "P", "bad4", "5", "1.5", "0", "0"],
        [DAY.isoformat(), "", "S", "P", "bad5", "5", "1", "0", "0"],
        ["11/20/2026", "C", "S", "P", "us-date", "5", "1", "0", "0"],
    ]
    result = ingest("surfside", str(write_csv(tmp_path / "a.csv", SURFSIDE_HEADER, rows)), "--org", "acme")
    assert (result["rows_read"], result["rows_loaded"], result["rows_quarantined"]) == (9, 4, 5)
    quarantined = {q.line_no: q.reason for q in QuarantinedRow.objects.filter(run_id=result["run_id"])}
    assert set(quarantined) == {5, 6, 7, 8, 9}
    assert "Impressions (Impressions) is negative" in quarantined[5]
    assert "is not a number ('lots')" in quarantined[6]
    assert "'yesterday' is not a date" in quarantined[7]
    assert "not a whole number" in quarantined[8]
    assert "Campaign (Campaign) is empty" in quarantined[9]
    assert any(m.creative.name == "us-date" for m in metrics(acme))


def test_a_file_for_another_date_is_refused(acme, cpm, tmp_path):
    path = write_csv(tmp_path / "a.csv", SURFSIDE_HEADER, surfside_rows(day=DAY))
    message, result = ingest_failing("surfside", str(path), "--org", "acme", "--date", "2026-11-21")
    assert "the file is for 2026-11-20, not 2026-11-21" in message
    assert metrics(acme) == [] and result["status"] == "failed"


def test_mixed_dates_keep_the_run_date_and_quarantine_the_rest(acme, cpm, tmp_path):
    rows = surfside_rows(day=DAY, n=2) + surfside_rows(day=DAY.replace(day=19), n=1)
    result = ingest(
        "surfside",
        str(write_csv(tmp_path / "a.csv", SURFSIDE_HEADER, rows)),
        "--org",
        "acme",
        "--date",
        DAY.isoformat(),
    )
    assert (result["rows_loaded"], result["rows_quarantined"]) == (2, 1)
    assert "is not the run's date" in QuarantinedRow.objects.get(run_id=result["run_id"]).reason


@pytest.mark.parametrize("content", [b"", b"\n\n", ",".join(SURFSIDE_HEADER).encode() + b"\n"])
def test_empty_files_fail_clearly(acme, cpm, tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    message, _ = ingest_failing("surfside", str(path), "--org", "acme")
    assert "empty" in message or "no data rows" in message
    assert IngestionRun.objects.get().status == "failed"


def test_no_cpm_in_force_quarantines_with_the_fix(acme, tmp_path):
    set_cpm(acme, "10", "2026-12-01")  # only from December
    message, _ = ingest_failing(
        "surfside", str(write_csv(tmp_path / "a.csv", SURFSIDE_HEADER, surfside_rows())), "--org", "acme"
    )
    assert "no CPM rate in force on 2026-11-20" in message


def test_cpm_in_force_on_each_date_is_used(acme, tmp_path):
    set_cpm(acme, "10", "2026-01-01")
    set_cpm(acme, "20", "2026-11-20")
    rows = surfside_rows(day=DAY.replace(day=19), n=1) + surfside_rows(day=DAY, n=1)
    ingest("surfside", str(write_csv(tmp_path / "a.csv", SURFSIDE_HEADER, rows)), "--org", "acme")
    by_day = {m.date.day: m for m in metrics(acme)}
    assert by_day[19].cpm == D("10") and by_day[19].spend == D("12.34")
    assert by_day[20].cpm == D("20") and by_day[20].spend == D("24.68")


def test_duplicate_keys_in_one_file_are_summed_and_counted(acme, cpm, tmp_path):
    rows = [*surfside_rows(n=2), surfside_rows(n=1)[0]]
    result = ingest("surfside", str(write_csv(tmp_path / "a.csv", SURFSIDE_HEADER, rows)), "--org", "acme")
    assert (result["rows_read"], result["rows_loaded"], result["duplicates"]) == (3, 2, 1)
    assert result["rows_read"] == result["rows_loaded"] + result["rows_quarantined"] + result["duplicates"]
    assert metrics(acme)[0].impressions == 2 * 1234


def test_other_org_is_untouched(acme, globex, cpm, tmp_path):
    ingest("surfside", str(write_csv(tmp_path / "a.csv", SURFSIDE_HEADER, surfside_rows())), "--org", "acme")
    assert metrics(globex) == []


def test_bombora_file_without_topic_and_score_is_refused(tmp_path):
    message, _ = ingest_failing("bombora", str(write_csv(tmp_path / "b.csv", ["Domain"], [["x.com"]])))
    assert "the header lacks Topic, Composite Score" in message


def test_hostile_csv_good_rows_load_each_bad_row_quarantined(acme, cpm, tmp_path):
    good = [",".join(str(v) for v in row).encode() for row in surfside_rows(n=4)]
    lines = [
        b"\xef\xbb\xbf" + ",".join(SURFSIDE_HEADER).encode(),  # BOM
        good[0],
        b"2026-11-20,C,S,P,ragged,5,1",  # too few fields
        b'2026-11-20,"C,S,P,quote,5,1,0,0',  # unbalanced quotes
        good[1],
        b"2026-11-20,C,S,P,nul\x00,5,1,0,0",  # NUL byte
        "2026-11-20,Caf\u00e9,S,P,utf8-ok,5,1,0,0".encode(),
        b"2026-11-20,Caf\xe9,S,P,latin1,5,1,0,0",  # invalid UTF-8 in a UTF-8 file
        good[2] + b"\r",  # CRLF mixed with LF
        b"2026-11-20,C,S,P," + b"x" * 20_000 + b",5,1,0,0",  # a 20 KB field
        good[3],
    ]
    path = tmp_path / "hostile.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = ingest("surfside", str(path), "--org", "acme")
    assert (result["rows_read"], result["rows_loaded"], result["rows_quarantined"]) == (10, 5, 5)
    assert result["rows_read"] == result["rows_loaded"] + result["rows_quarantined"] + result["duplicates"]
    reasons = {q.line_no: q.reason for q in QuarantinedRow.objects.filter(run_id=result["run_id"])}
    assert reasons == {
        3: "expected 9 fields, found 7",
        4: "unbalanced quotes",
        6: "the line contains a NUL byte",
        8: "the line is not valid UTF-8",
        10: "a field is longer than 10,000 characters",
    }
    assert any(m.campaign.name == "Café" for m in metrics(acme))


@pytest.mark.parametrize("encoding", ["cp1252", "utf-16"])
def test_windows_1252_and_utf16_files_are_decoded(acme, cpm, tmp_path, encoding):
    text = ",".join(SURFSIDE_HEADER) + "\r\n" + "2026-11-20,Caf\u00e9 cr\u00e8me,S,P,K,1000,10,1,5\r\n"
    path = tmp_path / f"{encoding}.csv"
    path.write_bytes(text.encode(encoding))
    assert ingest("surfside", str(path), "--org", "acme")["rows_loaded"] == 1
    assert metrics(acme)[0].campaign.name == "Café crème"


def test_html_or_executable_renamed_csv_is_refused(acme, cpm, tmp_path):
    for content, word in ((b"<!DOCTYPE html><html></html>", "HTML"), (b"MZ\x90\x00\x03", "executable")):
        path = tmp_path / "evil.csv"
        path.write_bytes(content)
        message, _ = ingest_failing("surfside", str(path), "--org", "acme")
        assert word in message
