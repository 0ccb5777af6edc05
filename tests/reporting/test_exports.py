"""Exports: CSV (formula-safe) and the PDF report (inline and as a job), downloads, audit, isolation."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re

import pytest
from pypdf import PdfReader

from p360.core import formatting
from p360.core.audit.models import AuditEvent
from p360.core.jobs.models import Job
from tests.reporting.helpers import days, expected, generate_rows, load

pytestmark = pytest.mark.django_db

RANGE = {"preset": "custom", "start": "2026-11-16", "end": "2026-11-22"}


@pytest.fixture
def rows(acme, tmp_path):
    generated = generate_rows(days("2026-11-09", 14))
    generated.append(["2026-11-17", '=HYPERLINK("http://evil")', "+S", "@P", "-C", 5000, 10, 1, "10.00"])
    load(acme, tmp_path, generated)
    return generated


def _csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_table_csv_is_formula_safe_and_matches_the_page(rows, acme, acme_marketer, login):
    client = login(acme_marketer)
    response = client.get(f"/o/{acme.slug}/reports/export.csv", {**RANGE, "table": "creative"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    table = _csv(response)
    header, body = table[0], table[1:]
    assert header[:6] == ["campaign_id", "campaign", "strategy", "placement", "creative_id", "creative"]
    evil = next(r for r in body if "HYPERLINK" in r[1])
    assert evil[1].startswith("'=") and evil[2] == "'+S" and evil[3] == "'@P" and evil[5] == "'-C"
    assert len(body) == 13  # 12 generated creatives + the hostile one
    assert AuditEvent.objects.filter(action="reporting.exported", org_slug="acme").exists()


def test_trend_and_source_csv(rows, acme, acme_marketer, login):
    client = login(acme_marketer)
    trend = _csv(client.get(f"/o/{acme.slug}/reports/export.csv", {**RANGE, "table": "trend"}))
    assert trend[0][0] == "date" and len(trend) == 8
    day = dict(zip(trend[0], trend[1], strict=True))
    assert day["spend"] == expected(rows, dt.date(2026, 11, 16), dt.date(2026, 11, 16))["spend"]
    source = _csv(client.get(f"/o/{acme.slug}/reports/export.csv", {**RANGE, "table": "source"}))
    assert source[1][0] == "surfside"


def test_summary_csv(rows, acme, acme_marketer, login):
    response = login(acme_marketer).get(
        f"/o/{acme.slug}/reports/summaries/export.csv", {"period": "week", "start": "2026-11-16"}
    )
    table = _csv(response)
    assert table[1][0] == "totals" and table[2][0] == "previous_totals" and table[3][0] == "delta_abs"
    assert table[1][6] == expected(rows, dt.date(2026, 11, 16), dt.date(2026, 11, 22))["spend"]
    bad = login(acme_marketer).get(f"/o/{acme.slug}/reports/summaries/export.csv", {"period": "week", "start": "x"})
    assert bad.status_code == 400


def test_bad_export_input_is_400(acme, acme_marketer, login):
    client = login(acme_marketer)
    response = client.get(
        f"/o/{acme.slug}/reports/export.csv", {"preset": "custom", "start": "2026-11-22", "end": "2026-11-01"}
    )
    assert response.status_code == 400 and b"ends" in response.content
    assert client.get(f"/o/{acme.slug}/reports/export.csv", {**RANGE, "table": "planet"}).status_code == 400


def _pdf_text(data: bytes) -> tuple[PdfReader, list[str]]:
    reader = PdfReader(io.BytesIO(data))
    return reader, [page.extract_text() for page in reader.pages]


def test_short_pdf_streams_with_kpis(rows, acme, acme_marketer, login):
    response = login(acme_marketer).post(
        f"/o/{acme.slug}/reports/export.pdf?preset=custom&start=2026-11-16&end=2026-11-22"
    )
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    _reader, texts = _pdf_text(response.content)
    text = "\n".join(texts)
    want = expected(rows, dt.date(2026, 11, 16), dt.date(2026, 11, 22))
    assert "Acme Corporation" in text and "16 Nov 2026" in text
    for key in ("spend", "ctr", "roas", "cpa", "conversion_revenue", "impressions"):
        assert formatting.metric(key, want[key]) in text, key  # issue 15: figures as the pages show them
    assert texts[0].count("Page 1 of") == 1
    assert AuditEvent.objects.filter(action="reporting.exported", org_slug="acme", after__format="pdf").exists()


def test_long_table_continues_across_pages_with_repeated_headers(acme, acme_marketer, login, tmp_path):
    many = generate_rows([dt.date(2026, 11, 16)], campaigns=2, creatives=200)
    many = [r for r in many if int(r[5]) > 0] or many
    load(acme, tmp_path, many)
    response = login(acme_marketer).post(
        f"/o/{acme.slug}/reports/export.pdf?preset=custom&start=2026-11-16&end=2026-11-16"
    )
    reader, texts = _pdf_text(response.content)
    pages = len(reader.pages)
    assert all(f"of {pages}" in t for t in texts)  # "Page n of N" on every page, N = the real count
    for n, text in enumerate(texts, start=1):
        assert f"Page {n} of {pages}" in text
    creatives_start = next(i for i, t in enumerate(texts) if "Creatives (" in t)
    continued = texts[creatives_start + 1 :]
    assert continued and all("Impr." in t and "ROAS %" in t for t in continued)  # header repeated
    rows_in_table = len({r[4] for r in many})
    # landscape A4 fits 25-40 creative rows a page; the table alone needs at least this many pages
    assert pages >= creatives_start + math.ceil(rows_in_table / 40)
    assert pages <= creatives_start + 1 + math.ceil(rows_in_table / 20)


def test_large_range_pdf_is_a_job_with_progress_and_an_org_only_download(
    rows, acme, globex, acme_marketer, globex_marketer, login, settings, django_capture_on_commit_callbacks
):
    settings.P360_PDF_INLINE_MAX_DAYS = 3
    client = login(acme_marketer)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/o/{acme.slug}/reports/export.pdf?preset=custom&start=2026-11-09&end=2026-11-22")
    assert response.status_code == 302
    job = Job.objects.get(kind="reporting.pdf_export", org=acme)
    assert response["Location"] == f"/o/{acme.slug}/reports/exports/{job.pk}/"
    assert job.status == "succeeded" and job.result["file"].startswith(f"orgs/{acme.schema_name}/reports/")
    assert job.progress_done == job.progress_total == 7
    page = client.get(response["Location"]).content.decode()
    assert "Download the PDF" in page
    download = client.get(f"/o/{acme.slug}/reports/exports/{job.pk}/download")
    assert download.status_code == 200
    data = b"".join(download.streaming_content)
    _reader, texts = _pdf_text(data)
    assert formatting.money(expected(rows, dt.date(2026, 11, 9), dt.date(2026, 11, 22))["spend"]) in texts[0]
    assert AuditEvent.objects.filter(action="reporting.downloaded", org_slug="acme").exists()
    # another org's user: 404 under acme's prefix, and 404 for acme's job id under their own prefix
    other = login(globex_marketer)
    assert other.get(f"/o/{acme.slug}/reports/exports/{job.pk}/download").status_code == 404
    assert other.get(f"/o/{globex.slug}/reports/exports/{job.pk}/download").status_code == 404
    assert other.get(f"/o/{globex.slug}/reports/exports/{job.pk}/").status_code == 404


def test_pdf_needs_post(acme, acme_marketer, login):
    assert login(acme_marketer).get(f"/o/{acme.slug}/reports/export.pdf").status_code == 405


def test_pdf_section_headings_never_end_a_page(acme, monkeypatch):
    """Issue 15 item 14: a heading moves to the next page with its table instead of being stranded."""
    from django_tenants.utils import schema_context

    from reporting import pdf, selectors

    def fake_table(level, start, end, filters, **kwargs):  # type: ignore[no-untyped-def]
        rows = [
            {
                level: f"{level} {i}",
                "campaign": "C",
                "impressions": 1000 + i,
                "clicks": 10,
                "conversions": 1,
                "conversion_revenue": "10.00",
                "spend": "5.0000000",
                "ctr": "1.000000",
                "cpa": "5.0000",
                "roas": "200.0000",
            }
            for i in range(sizes[level])
        ]
        return selectors.TablePage(
            level=level, rows=rows, total=len(rows), page=1, per_page=len(rows) or 1, sort="spend", desc=True
        )

    monkeypatch.setattr(selectors, "table", fake_table)
    stranded = []
    with schema_context(acme.schema_name):
        for n in range(0, 30, 3):
            sizes = {"campaign": n, "strategy": 3, "creative": 3}
            out = io.BytesIO()
            pdf.build_pdf(out, org_name="Acme", start=dt.date(2026, 11, 16), end=dt.date(2026, 11, 22))
            for text in _pdf_text(out.getvalue())[1]:
                footer = ("Page ", "Acme · ")  # drawn last on every page
                lines = [line for line in text.splitlines() if line.strip() and not line.startswith(footer)]
                if lines and re.match(r"^(Campaigns|Strategies|Creatives) \(\d+\)$", lines[-1].strip()):
                    stranded.append((n, lines[-1]))
    assert stranded == []
