"""Surfside from S3 (boto3) against moto's S3 server over real HTTP: daily pull, XLSX, missing
file, backfill, refused credentials."""

from __future__ import annotations

import io

import httpx
import polars as pl
import pytest
from django.core import mail
from django_tenants.utils import schema_context

from campaigns.models import ClientSettings
from campaigns.selectors import client_settings
from ingestion.models import IngestionRun
from tests.ingestion.helpers import (
    SURFSIDE_HEADER,
    ingest,
    ingest_failing,
    metrics,
    moto_bucket,
    set_cpm,
    surfside_rows,
)

pytestmark = pytest.mark.django_db
BUCKET = "surfside-drop"


@pytest.fixture(scope="module")
def s3_server():
    with moto_bucket(BUCKET) as server:
        yield server


@pytest.fixture
def s3(s3_server, settings, acme):
    endpoint, client = s3_server
    settings.P360_SURFSIDE_BUCKET = BUCKET
    settings.P360_SURFSIDE_ENDPOINT_URL = endpoint
    settings.P360_SURFSIDE_ACCESS_KEY_ID = "test"
    settings.P360_SURFSIDE_SECRET_ACCESS_KEY = "test"
    set_cpm(acme, "8")
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    return client


def put_csv(client, key: str, rows) -> None:
    buffer = io.StringIO()
    buffer.write(",".join(SURFSIDE_HEADER) + "\n")
    for row in rows:
        buffer.write(",".join(str(v) for v in row) + "\n")
    client.put_object(Bucket=BUCKET, Key=key, Body=buffer.getvalue().encode())


def test_daily_file_is_pulled_from_s3_and_loaded(s3, acme):
    put_csv(s3, "acme/media-report-2026-11-20.csv", surfside_rows(n=5))
    result = ingest("surfside", "--org", "acme", "--date", "2026-11-20")
    assert (result["status"], result["rows_read"], result["rows_loaded"]) == ("succeeded", 5, 5)
    run = IngestionRun.objects.get(pk=result["run_id"])
    assert run.file_name == "media-report-2026-11-20.csv" and run.params["s3_key"] == "acme/media-report-2026-11-20.csv"
    assert len(run.content_hash) == 64
    assert len(metrics(acme)) == 5


def test_xlsx_variant_and_per_org_prefix_and_pattern(s3, acme):
    with schema_context(acme.schema_name):
        ClientSettings.objects.filter(pk=client_settings().pk).update(
            surfside_prefix="clients/acme/", surfside_pattern="report_{yyyymmdd}.csv"
        )
    frame = pl.DataFrame({h: [str(r[i]) for r in surfside_rows(n=3)] for i, h in enumerate(SURFSIDE_HEADER)})
    frame = frame.with_columns(pl.col("Impressions").cast(pl.Int64), pl.col("Clicks").cast(pl.Int64))
    buffer = io.BytesIO()
    frame.write_excel(buffer)
    s3.put_object(Bucket=BUCKET, Key="clients/acme/report_20261120.xlsx", Body=buffer.getvalue())
    result = ingest("surfside", "--org", "acme", "--date", "2026-11-20")
    assert (result["rows_read"], result["rows_loaded"], result["rows_quarantined"]) == (3, 3, 0)
    assert sorted(m.impressions for m in metrics(acme)) == [1234, 2234, 3234]


def test_missing_file_is_a_failed_run_with_an_alert(s3, acme):
    with schema_context(acme.schema_name):
        ClientSettings.objects.filter(pk=client_settings().pk).update(alert_emails="cm@acme.test; second@acme.test")
    message, result = ingest_failing("surfside", "--org", "acme", "--date", "2026-11-20")
    assert "missing file: s3://surfside-drop/acme/media-report-2026-11-20.csv does not exist" in message
    assert result["status"] == "failed"
    (alert,) = mail.outbox
    assert set(alert.to) == {"ops@p360.test", "cm@acme.test", "second@acme.test"}
    assert "media-report-2026-11-20.csv" in alert.body and "2026-11-20" in alert.subject


def test_backfill_pulls_each_day_and_reports_the_missing_one(s3, acme):
    put_csv(s3, "acme/media-report-2026-11-18.csv", surfside_rows(day=__import__("datetime").date(2026, 11, 18), n=2))
    put_csv(s3, "acme/media-report-2026-11-20.csv", surfside_rows(n=3))
    message, result = ingest_failing("surfside", "--org", "acme", "--from", "2026-11-18", "--to", "2026-11-20")
    assert "2026-11-19" in message
    assert [r["status"] for r in result["runs"]] == ["succeeded", "failed", "succeeded"]
    assert (result["rows_read"], result["rows_loaded"]) == (5, 5)
    assert len(metrics(acme)) == 5


def test_wrong_credentials_fail_the_run_clearly(s3_server, s3, acme, settings):
    endpoint, _ = s3_server
    put_csv(s3, "acme/media-report-2026-11-20.csv", surfside_rows(n=2))
    settings.P360_SURFSIDE_ACCESS_KEY_ID = "AKIAWRONGWRONGWRONG1"
    settings.P360_SURFSIDE_SECRET_ACCESS_KEY = "wrong-secret"
    httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"0").raise_for_status()  # enforce IAM auth now
    try:
        message, result = ingest_failing("surfside", "--org", "acme", "--date", "2026-11-20")
    finally:
        httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"inf").raise_for_status()
    assert "S3 refused the Surfside credentials (InvalidAccessKeyId)" in message
    assert result["status"] == "failed" and metrics(acme) == []
    assert len(mail.outbox) == 1


def test_not_configured(settings, acme):
    settings.P360_SURFSIDE_BUCKET = ""
    message, _ = ingest_failing("surfside", "--org", "acme", "--date", "2026-11-20")
    assert "set P360_SURFSIDE_BUCKET" in message
