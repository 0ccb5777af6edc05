"""Facebook (Meta Ads Manager) exports: header variants, number formats, the upload page, history,
duplicate detection, size limit and isolation."""

from __future__ import annotations

import io

import polars as pl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from ingestion.models import IngestionRun
from tests.ingestion.helpers import D, ingest, ingest_failing, metrics, set_cpm, write_csv

pytestmark = pytest.mark.django_db

EXPORT_HEADER = [
    "Reporting starts",
    "Reporting ends",
    "Campaign name",
    "Ad set name",
    "Ad name",
    "Impressions",
    "Link clicks",
    "Results",
    "Purchases conversion value",
    "Amount spent (USD)",
    "CTR (link click-through rate)",
]
EXPORT_ROWS = [
    [
        "2026-11-20",
        "2026-11-20",
        "Holiday",
        "Lookalike 1%",
        "Video 15s",
        "1,250,000",
        "3,400",
        "120",
        "$4,321.50",
        "5,339.50",
        "0.27%",
    ],
    ["2026-11-20", "2026-11-20", "Holiday", "Lookalike 1%", "Carousel", "98,765", "432", "", "", "120.00", "0.44%"],
    ["2026-11-21", "2026-11-21", "Holiday", "Retargeting", "Video 15s", "10,000", "50", "5", "250", "40", "0.5%"],
]


@pytest.fixture
def cpm(acme):
    set_cpm(acme, "7.25")


def test_meta_export_with_reporting_starts_and_number_formats(acme, cpm, tmp_path):
    result = ingest("facebook", str(write_csv(tmp_path / "export.csv", EXPORT_HEADER, EXPORT_ROWS)), "--org", "acme")
    assert (result["rows_read"], result["rows_loaded"], result["rows_quarantined"]) == (3, 3, 0)
    rows = metrics(acme, source="facebook")
    video = next(m for m in rows if m.strategy.name == "Lookalike 1%" and m.creative.name == "Video 15s")
    assert video.placement.name == video.creative.name == "Video 15s"  # ad name -> placement AND creative
    assert (video.impressions, video.clicks, video.conversions, video.conversion_revenue) == (
        1250000,
        3400,
        120,
        D("4321.50"),
    )
    assert video.spend == D("9062.5")  # our CPM, not the export's "Amount spent"
    carousel = next(m for m in rows if m.creative.name == "Carousel")
    assert carousel.conversions == 0 and carousel.cpa is None  # empty Results = 0


def test_day_column_and_clicks_all_variant(acme, cpm, tmp_path):
    header = ["Day", "Campaign name", "Ad set name", "Ad name", "Impressions", "Clicks (all)", "Results", "Revenue"]
    rows = [["2026-11-20", "C", "S", "A", '"2,000"', "10", "1", "9.90"]]
    path = tmp_path / "day.csv"
    path.write_text(",".join(header) + "\n" + '2026-11-20,C,S,A,"2,000",10,1,9.90\n')
    assert rows and ingest("facebook", str(path), "--org", "acme")["rows_loaded"] == 1
    (row,) = metrics(acme)
    assert (row.impressions, row.clicks) == (2000, 10)


def test_lifetime_rows_are_quarantined(acme, cpm, tmp_path):
    rows = [["2026-11-01", "2026-11-30", *EXPORT_ROWS[0][2:]], EXPORT_ROWS[1]]
    result = ingest("facebook", str(write_csv(tmp_path / "life.csv", EXPORT_HEADER, rows)), "--org", "acme")
    assert (result["rows_loaded"], result["rows_quarantined"]) == (1, 1)


def test_xlsx_export(acme, cpm, tmp_path):
    frame = pl.DataFrame({h: [r[i] for r in EXPORT_ROWS] for i, h in enumerate(EXPORT_HEADER)})
    path = tmp_path / "export.xlsx"
    frame.write_excel(path)
    assert ingest("facebook", str(path), "--org", "acme")["rows_loaded"] == 3


def test_reupload_replaces_only_the_keys_in_the_file(acme, cpm, tmp_path):
    ingest("facebook", str(write_csv(tmp_path / "a.csv", EXPORT_HEADER, EXPORT_ROWS)), "--org", "acme")
    corrected = [[*EXPORT_ROWS[0][:5], "1,300,000", *EXPORT_ROWS[0][6:]]]
    second = ingest("facebook", str(write_csv(tmp_path / "b.csv", EXPORT_HEADER, corrected)), "--org", "acme")
    assert second["metrics_replaced"] == 1
    rows = metrics(acme, source="facebook")
    assert len(rows) == 3 and sum(m.impressions for m in rows) == 1_300_000 + 98_765 + 10_000


def test_missing_revenue_column(acme, cpm, tmp_path):
    header = [h for h in EXPORT_HEADER if h != "Purchases conversion value"]
    rows = [[v for i, v in enumerate(r) if i != 8] for r in EXPORT_ROWS]
    message, _ = ingest_failing("facebook", str(write_csv(tmp_path / "x.csv", header, rows)), "--org", "acme")
    assert "'purchases conversion value'" in message and "missing" in message


# --- The upload page -------------------------------------------------------------------------------


def upload(client, org, content: bytes, name: str = "export.csv", **extra):
    return client.post(
        f"/o/{org.slug}/ingestion/facebook/", {"file": SimpleUploadedFile(name, content), **extra}, follow=True
    )


def export_bytes(rows=EXPORT_ROWS) -> bytes:
    buffer = io.StringIO()
    import csv

    csv.writer(buffer).writerows([EXPORT_HEADER, *rows])
    return buffer.getvalue().encode()


def test_marketer_uploads_and_sees_history(acme, cpm, acme_marketer, login):
    client = login(acme_marketer)
    page = client.get(f"/o/{acme.slug}/ingestion/facebook/")
    assert page.status_code == 200 and b"No uploads yet" in page.content
    response = upload(client, acme, export_bytes())
    assert b"Loaded export.csv: 3 rows read, 3 loaded, 0 quarantined" in response.content
    run = IngestionRun.objects.get(org=acme, source="facebook")
    assert run.trigger == "upload" and run.created_by_email == acme_marketer.email
    assert f"#{run.pk}".encode() in response.content
    detail = client.get(f"/o/{acme.slug}/ingestion/runs/{run.pk}/")
    assert detail.status_code == 200 and b"No row was quarantined" in detail.content


def test_identical_file_is_recognised_before_loading_again(acme, cpm, acme_marketer, login):
    client = login(acme_marketer)
    upload(client, acme, export_bytes())
    again = upload(client, acme, export_bytes())
    assert b"This exact file was already loaded" in again.content and b"Load it again" in again.content
    assert IngestionRun.objects.filter(org=acme, source="facebook").count() == 1
    confirmed = upload(client, acme, export_bytes(), load_again="on")
    assert b"were replaced (no doubles)" in confirmed.content
    assert len(metrics(acme, source="facebook")) == 3


def test_bad_files_are_refused_with_a_message(acme, cpm, acme_marketer, login, settings):
    client = login(acme_marketer)
    assert b"only .csv, .xlsx files are accepted" in upload(client, acme, b"MZ\x90\x00", name="tool.exe").content
    response = upload(client, acme, b"<html><body>hi</body></html>", name="page.csv")
    assert b"not a CSV file" in response.content
    settings.P360_INGEST_MAX_UPLOAD_MB = 1
    response = upload(client, acme, b"x" * (3 * 1024 * 1024), name="big.csv")
    assert b"larger than 1 MB" in response.content


def test_quarantine_csv_neutralises_formulas(acme, cpm, acme_marketer, login):
    client = login(acme_marketer)
    rows = [*EXPORT_ROWS, ["=HYPERLINK(1)", "2026-11-20", "C", "S", "A", "5", "1", "1", "1", "1", "1"]]
    upload(client, acme, export_bytes(rows))
    run = IngestionRun.objects.get(org=acme)
    body = client.get(f"/o/{acme.slug}/ingestion/runs/{run.pk}/quarantine.csv").content.decode()
    line = body.splitlines()[1]
    assert line.startswith("5,") and "is not a date" in line
    assert ",\"'=HYPERLINK(1)" in line  # the raw cell cannot run as a formula


def test_other_org_cannot_see_runs(acme, globex, cpm, acme_marketer, globex_marketer, login):
    upload(login(acme_marketer), acme, export_bytes())
    run = IngestionRun.objects.get(org=acme)
    other = login(globex_marketer)
    assert other.get(f"/o/{acme.slug}/ingestion/facebook/").status_code == 404
    assert other.get(f"/o/{globex.slug}/ingestion/runs/{run.pk}/").status_code == 404
    assert other.get(f"/o/{globex.slug}/ingestion/runs/{run.pk}/quarantine.csv").status_code == 404
    assert b"No uploads yet" in other.get(f"/o/{globex.slug}/ingestion/facebook/").content
