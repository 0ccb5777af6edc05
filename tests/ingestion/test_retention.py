"""Issue 16: retention as document 004 asks. Metrics 13 months (archived to Parquet in the org's storage, then
deleted, one transaction per org), ingestion logs 90 days, audit log 2 years; dry runs change nothing."""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.utils import DatabaseError
from django.utils import timezone
from django_q.models import Schedule
from django_tenants.utils import schema_context

from campaigns.models import DailyMetric
from ingestion.models import IngestionRun, QuarantinedRow
from p360.core.audit.models import AuditEvent
from p360.core.jobs.models import Job
from p360.core.jobs.retention import archive_key, months_before, read_archive, scheduled_retention
from p360.core.jobs.schedules import ensure_schedules
from p360.core.uploads.storage import org_storage
from reporting.models import DailyRollup
from tests.ingestion.helpers import SURFSIDE_HEADER, ingest, set_cpm, surfside_rows, write_csv

pytestmark = pytest.mark.django_db
TODAY = timezone.now().date()
OLD_DAY = months_before(TODAY, 14)  # past the 13 months
OLD_DAY_2 = OLD_DAY + dt.timedelta(days=1)
KEPT_DAY = months_before(TODAY, 12)


@pytest.fixture(autouse=True)
def _org_storage_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.P360_S3_BUCKET = ""


def retention(*args: str) -> dict[str, Any]:
    out = io.StringIO()
    call_command("retention", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def load_metrics(org, tmp_path, impressions_offset: int = 0) -> None:
    set_cpm(org, "12.5", day="2020-01-01")
    rows = []
    for day in (OLD_DAY, OLD_DAY_2, KEPT_DAY):
        for row in surfside_rows(day=day, n=3):
            row[5] += impressions_offset  # impressions differ per org (canaries)
            rows.append(row)
    path = write_csv(tmp_path / f"{org.slug}-metrics.csv", SURFSIDE_HEADER, rows)
    assert ingest("surfside", str(path), "--org", org.slug)["status"] == "succeeded"


def metric_rows(org, before: dt.date | None = None) -> list[dict[str, Any]]:
    with schema_context(org.schema_name):
        qs = DailyMetric.objects.order_by("pk")
        if before:
            qs = qs.filter(date__lt=before)
        return list(qs.values())


def counts(org) -> tuple[int, int]:
    with schema_context(org.schema_name):
        return DailyMetric.objects.count(), DailyRollup.objects.count()


# --- daily metrics -------------------------------------------------------------------------------------------------


def test_metrics_dry_run_counts_per_org_and_table_and_changes_nothing(acme, globex, tmp_path):
    load_metrics(acme, tmp_path)
    load_metrics(globex, tmp_path, impressions_offset=7)
    before = (counts(acme), counts(globex))
    result = retention("--dry-run", "--all-orgs", "--only", "metrics")
    assert result["dry_run"] is True
    assert result["orgs"]["acme"]["metrics"]["rows"]["campaigns_dailymetric"] == 6
    assert result["orgs"]["acme"]["metrics"]["rows"]["reporting_dailyrollup"] > 0
    assert result["orgs"]["globex"]["metrics"]["rows"]["campaigns_dailymetric"] == 6
    assert (counts(acme), counts(globex)) == before
    assert not org_storage("org_acme").exists(archive_key("acme", "campaigns_dailymetric", OLD_DAY))
    text = io.StringIO()
    call_command("retention", "--dry-run", "--org", "acme", stdout=text)
    assert "DRY RUN: nothing changed" in text.getvalue() and "campaigns_dailymetric" in text.getvalue()


def test_old_metrics_are_archived_as_parquet_with_exact_values_then_deleted_for_that_org_only(acme, globex, tmp_path):
    load_metrics(acme, tmp_path)
    load_metrics(globex, tmp_path, impressions_offset=7)
    old_acme = metric_rows(acme, before=months_before(TODAY, 13))
    globex_before = metric_rows(globex)
    assert len(old_acme) == 6

    result = retention("--org", "acme", "--only", "metrics")
    assert result["orgs"]["acme"]["metrics"]["rows"]["campaigns_dailymetric"] == 6
    assert "globex" not in result["orgs"]
    remaining = metric_rows(acme)
    assert len(remaining) == 3 and {r["date"] for r in remaining} == {KEPT_DAY}
    with schema_context(acme.schema_name):
        assert not DailyRollup.objects.filter(date__lt=months_before(TODAY, 13)).exists()
        assert DailyRollup.objects.filter(date=KEPT_DAY).exists()
    assert metric_rows(globex) == globex_before  # another org's data is untouched

    # The archive: in acme's storage, the org in the key, and every value exact.
    storage = org_storage("org_acme")
    archived = []
    for day in (OLD_DAY, OLD_DAY_2):
        key = archive_key("acme", "campaigns_dailymetric", day)
        assert "acme" in key and storage.exists(key)
        archived += read_archive(storage, key).to_dicts()
        assert not org_storage("org_globex").exists(key)
    assert (storage.location).endswith("orgs/org_acme")  # type: ignore[attr-defined]
    by_id = {row["id"]: row for row in archived}
    assert sorted(by_id) == sorted(r["id"] for r in old_acme)
    for original in old_acme:
        copy = by_id[original["id"]]
        for field in ("date", "impressions", "clicks", "conversions", "spend", "cpm", "ctr", "cpc", "roas", "run_id"):
            assert copy[field] == original[field], field
        assert isinstance(copy["spend"], Decimal) and copy["spend"] == original["spend"]
    rollup = read_archive(storage, archive_key("acme", "reporting_dailyrollup", OLD_DAY))
    assert rollup.height > 0 and set(rollup["date"].to_list()) == {OLD_DAY}
    assert AuditEvent.objects.filter(action="retention.metrics_archived", org_slug="acme").count() == 1

    again = retention("--org", "acme", "--only", "metrics")  # nothing left to do: re-running changes nothing
    assert again["orgs"]["acme"]["metrics"]["rows"] == {"campaigns_dailymetric": 0, "reporting_dailyrollup": 0}


def test_a_crash_before_the_commit_leaves_every_row_and_the_next_run_archives_each_row_once(
    acme, tmp_path, monkeypatch
):
    load_metrics(acme, tmp_path)
    before = counts(acme)
    monkeypatch.setenv("P360_FAULT_RAISE", "retention:metrics_before_commit")
    with pytest.raises(CommandError, match="retention failed for acme:metrics"):
        call_command("retention", "--org", "acme", "--only", "metrics", stdout=io.StringIO())
    assert counts(acme) == before  # the deletes were rolled back with the transaction
    out = io.StringIO()
    with pytest.raises(CommandError):  # --json still prints the report, and still fails
        call_command("retention", "--org", "acme", "--only", "metrics", "--json", stdout=out)
    assert json.loads(out.getvalue())["failed"] == ["acme:metrics"]
    monkeypatch.delenv("P360_FAULT_RAISE")
    retention("--org", "acme", "--only", "metrics")
    frame = read_archive(org_storage("org_acme"), archive_key("acme", "campaigns_dailymetric", OLD_DAY))
    assert frame.height == 3 and frame["id"].n_unique() == 3  # rewritten after the crash, not doubled


# --- ingestion logs ------------------------------------------------------------------------------------------------


def make_run(org, *, days_old: int, file_path: str = "") -> IngestionRun:
    run = IngestionRun.objects.create(source="surfside", org=org, status="failed", file_path=file_path)
    QuarantinedRow.objects.create(run=run, line_no=2, reason="bad", raw=f"{org.slug if org else 'reds'} canary")
    job = Job.objects.create(kind="ingestion.run", org=org, status="failed")
    IngestionRun.objects.filter(pk=run.pk).update(
        created_at=timezone.now() - dt.timedelta(days=days_old), job_id=job.pk
    )
    return run


def test_ingestion_logs_older_than_90_days_go_with_their_quarantine_files_and_jobs(acme, globex):
    stored = default_storage.save("ingestion/acme/surfside/1/old.csv", ContentFile(b"a,b\n"))
    shared = default_storage.save("ingestion/acme/surfside/2/shared.csv", ContentFile(b"a,b\n"))
    old = make_run(acme, days_old=91, file_path=stored)
    old_shared = make_run(acme, days_old=95, file_path=shared)
    young_rerun = make_run(acme, days_old=10, file_path=shared)  # a re-run still uses that file
    young = make_run(acme, days_old=89)
    other = make_run(globex, days_old=200)
    reds = IngestionRun.objects.create(source="reds", org=None, status="succeeded")
    IngestionRun.objects.filter(pk=reds.pk).update(created_at=timezone.now() - dt.timedelta(days=120))

    dry = retention("--dry-run", "--org", "acme", "--only", "logs")["orgs"]["acme"]["logs"]["rows"]
    assert dry == {
        "audience_quarantine_files": 0,
        "ingestion_ingestionrun": 2,
        "ingestion_quarantinedrow": 2,
        "jobs_job": 2,
        "stored_files": 1,
    }
    assert IngestionRun.objects.filter(pk=old.pk).exists() and default_storage.exists(stored)

    done = retention("--org", "acme", "--only", "logs")["orgs"]["acme"]["logs"]["rows"]
    assert done == dry
    assert not IngestionRun.objects.filter(pk__in=[old.pk, old_shared.pk]).exists()
    assert not QuarantinedRow.objects.filter(run_id__in=[old.pk, old_shared.pk]).exists()
    assert not default_storage.exists(stored)
    assert default_storage.exists(shared)  # still named by a younger run
    assert IngestionRun.objects.filter(pk__in=[young.pk, young_rerun.pk, other.pk, reds.pk]).count() == 4
    assert QuarantinedRow.objects.filter(run=other).exists()  # globex untouched
    # Runs of no organisation (REDS files) are handled with --all-orgs.
    everything = retention("--all-orgs", "--only", "logs")
    assert everything["orgs"]["(global)"]["logs"]["rows"]["ingestion_ingestionrun"] == 1
    assert not IngestionRun.objects.filter(pk__in=[reds.pk, other.pk]).exists()


# --- audit log -----------------------------------------------------------------------------------------------------


def insert_audit(org, *, days_old: int, action: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audit_auditevent (org_id, org_slug, actor_email, action, entity_type, entity_id, "
            "before, after, user_agent, request_id, created_at) VALUES (%s, %s, '', %s, '', '', NULL, %s, '', '', %s) "
            "RETURNING id",
            [
                org.pk if org else None,
                org.slug if org else "",
                action,
                json.dumps({"canary": action}),
                timezone.now() - dt.timedelta(days=days_old),
            ],
        )
        return cursor.fetchone()[0]


def test_audit_rows_older_than_two_years_are_archived_then_deleted_and_younger_ones_cannot_be(acme, globex):
    old = insert_audit(acme, days_old=800, action="test.old")
    young = insert_audit(acme, days_old=700, action="test.young")
    other = insert_audit(globex, days_old=900, action="test.globex_old")
    orphan = insert_audit(None, days_old=900, action="test.global_old")

    # The database still refuses a plain DELETE, even of an old row (trust item 32).
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=old).delete()
    # ... and the retention path itself cannot delete a row younger than 2 years.
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL p360.audit_retention = 'on'")
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [young])

    dry = retention("--dry-run", "--org", "acme", "--only", "audit")
    assert dry["orgs"]["acme"]["audit"]["rows"] == {"audit_auditevent": 1}
    assert AuditEvent.objects.filter(pk=old).exists()

    done = retention("--org", "acme", "--only", "audit")
    assert done["orgs"]["acme"]["audit"]["rows"] == {"audit_auditevent": 1}
    assert not AuditEvent.objects.filter(pk=old).exists()
    assert AuditEvent.objects.filter(pk__in=[young, other, orphan]).count() == 3  # younger, other org, no org
    day = (timezone.now() - dt.timedelta(days=800)).date()
    archived = read_archive(org_storage("org_acme"), archive_key("acme", "audit_auditevent", day)).to_dicts()
    assert [(r["id"], r["action"], json.loads(r["after"])) for r in archived] == [
        (old, "test.old", {"canary": "test.old"})
    ]
    assert AuditEvent.objects.filter(action="retention.audit_archived", org_slug="acme").exists()

    retention("--all-orgs", "--only", "audit")
    assert not AuditEvent.objects.filter(pk__in=[other, orphan]).exists()
    assert AuditEvent.objects.filter(pk=young).exists()


# --- schedules and command input -----------------------------------------------------------------------------------


def test_retention_is_scheduled_and_runs_one_job_per_org(acme, globex, tmp_path):
    ensure_schedules()
    names = set(Schedule.objects.filter(name__startswith="p360: retention").values_list("func", flat=True))
    assert names == {
        "p360.core.jobs.retention.scheduled_metrics",
        "p360.core.jobs.retention.scheduled_logs",
        "p360.core.jobs.retention.scheduled_audit",
    }
    load_metrics(acme, tmp_path)
    job_ids = scheduled_retention("metrics")
    jobs = {job.org.slug: job for job in Job.objects.filter(pk__in=job_ids).select_related("org")}
    assert set(jobs) >= {"acme", "globex"} and all(j.status == "succeeded" for j in jobs.values())
    assert jobs["acme"].result["orgs"]["acme"]["metrics"]["rows"]["campaigns_dailymetric"] == 6
    assert counts(acme)[0] == 3


def test_retention_needs_an_org_and_refuses_unknown_ones(acme):
    with pytest.raises(CommandError, match="--org SLUG"):
        call_command("retention", "--dry-run", stdout=io.StringIO())
    with pytest.raises(CommandError, match="unknown or inactive organisation"):
        call_command("retention", "--dry-run", "--org", "nope", stdout=io.StringIO())


# --- the archive on S3 (django-storages against moto's real S3 API server) -----------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def test_metrics_archive_goes_to_the_orgs_s3_prefix(acme, tmp_path, settings, monkeypatch, s3_endpoint):
    import boto3
    import polars as pl

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="p360-retention")
    load_metrics(acme, tmp_path)
    old = metric_rows(acme, before=months_before(TODAY, 13))
    settings.P360_S3_BUCKET, settings.P360_S3_ENDPOINT_URL = "p360-retention", s3_endpoint
    retention("--org", "acme", "--only", "metrics")
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="p360-retention")["Contents"])
    assert all(k.startswith("orgs/org_acme/archive/acme/") for k in keys)
    key = "orgs/org_acme/" + archive_key("acme", "campaigns_dailymetric", OLD_DAY)
    frame = pl.read_parquet(io.BytesIO(client.get_object(Bucket="p360-retention", Key=key)["Body"].read()))
    originals = {r["id"]: r for r in old if r["date"] == OLD_DAY}
    assert {r["id"]: (r["spend"], r["impressions"]) for r in frame.to_dicts()} == {
        i: (r["spend"], r["impressions"]) for i, r in originals.items()
    }


def test_audience_import_quarantine_files_older_than_90_days_are_deleted(acme, globex, acme_marketer):
    from audiences.models import AudienceImport

    made = {}
    for org in (acme, globex):
        with schema_context(org.schema_name):
            for label, days_old in (("old", 91), ("young", 30)):
                name = default_storage.save(f"orgs/{org.schema_name}/imports/{label}/quarantine.csv", ContentFile(b"x"))
                imp = AudienceImport.objects.create(
                    audience_name=f"{org.slug} {label}",
                    source_name="f.csv",
                    created_by=acme_marketer,
                    quarantine_file=name,
                )
                AudienceImport.objects.filter(pk=imp.pk).update(created_at=timezone.now() - dt.timedelta(days=days_old))
                made[(org.slug, label)] = (imp.pk, name)
    dry = retention("--dry-run", "--org", "acme", "--only", "logs")["orgs"]["acme"]["logs"]["rows"]
    assert dry["audience_quarantine_files"] == 1 and default_storage.exists(made[("acme", "old")][1])
    retention("--org", "acme", "--only", "logs")
    assert not default_storage.exists(made[("acme", "old")][1])
    assert default_storage.exists(made[("acme", "young")][1]) and default_storage.exists(made[("globex", "old")][1])
    with schema_context(acme.schema_name):
        assert AudienceImport.objects.get(pk=made[("acme", "old")][0]).quarantine_file == ""  # the import stays
        assert AudienceImport.objects.get(pk=made[("acme", "young")][0]).quarantine_file
