"""A worker killed mid-run (SIGKILL semantics) leaves nothing half-written; the rerun is exact."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from ingestion.models import IngestionRun
from p360.core.jobs.models import Job
from p360.core.jobs.services import run_job
from tests.cli import run_manage
from tests.ingestion.helpers import SURFSIDE_HEADER, surfside_rows, write_csv

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
SLUG = "faultorg"


@pytest.fixture(scope="module")
def fault_org(django_db_setup, django_db_blocker):
    from campaigns.services import cpm_set
    from tenants.models import Organization
    from tenants.services import org_create

    with django_db_blocker.unblock():
        org = org_create(slug=SLUG, name="Fault injection org", ttd_advertiser_id="faultadv")
        with schema_context(org.schema_name):
            cpm_set(cpm="10", effective_date=dt.date(2026, 1, 1), actor=None)
        connection.set_schema_to_public()
        yield org
        connection.set_schema_to_public()
        global_runs = list(
            IngestionRun.objects.filter(org__isnull=True, file_name="reds-fault.psv").values_list("pk", flat=True)
        )
        Job.objects.filter(kind="ingestion.run_global", params__run_id__in=global_runs).delete()
        IngestionRun.objects.filter(pk__in=global_runs).delete()
        IngestionRun.objects.filter(org=org).delete()
        Job.objects.filter(org=org).delete()
        org = Organization.objects.get(pk=org.pk)
        org.domains.all().delete()
        org.delete(force_drop=True)
        shutil.rmtree(Path(settings.MEDIA_ROOT) / "ingestion" / SLUG, ignore_errors=True)
        for run_id in global_runs:
            shutil.rmtree(Path(settings.MEDIA_ROOT) / "ingestion" / "global" / "reds" / str(run_id), ignore_errors=True)


def cli(*args: str, fault: str = ""):
    env = {"P360_DB_NAME": connection.settings_dict["NAME"], "P360_FAULT_INJECT": fault}
    return run_manage("ingest", *args, "--json", env=env)


def metric_count(org) -> tuple[int, int]:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*), coalesce(sum(impressions), 0) FROM "{org.schema_name}".campaigns_dailymetric')
        count, impressions = cursor.fetchone()
        cursor.execute(f'SELECT count(*) FROM "{org.schema_name}".ingestion_store_stagedmetric')
        assert cursor.fetchone()[0] in (0, 50)  # unlogged staging: a killed run's rows are ignored and replaced
    return count, int(impressions)


def test_kill_mid_run_then_rerun_gives_exact_counts(fault_org, tmp_path, settings):
    # The subprocesses store files where the installation does (var/media); read them back there.
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(settings.MEDIA_ROOT)},
        },
    }
    rows = surfside_rows(n=50)
    path = write_csv(tmp_path / "media-report-2026-11-20.csv", SURFSIDE_HEADER, rows)
    expected = (50, sum(int(r[5]) for r in rows))

    killed = cli("surfside", str(path), "--org", SLUG, fault="ingest:after_stage")
    assert killed.returncode == 137, killed.stderr
    assert metric_count(fault_org) == (0, 0)  # nothing half-written
    stale = IngestionRun.objects.filter(org=fault_org).get()
    assert stale.status == "running"

    ok = cli("surfside", str(path), "--org", SLUG)
    assert ok.returncode == 0, ok.stderr
    result = json.loads(ok.stdout)
    assert (result["status"], result["rows_read"], result["rows_loaded"], result["rows_quarantined"]) == (
        "succeeded",
        50,
        50,
        0,
    )
    assert metric_count(fault_org) == expected

    # Killed after the new rows were inserted but before commit: the previous load stays, exactly.
    again = cli("surfside", str(path), "--org", SLUG, fault="ingest:after_load")
    assert again.returncode == 137
    assert metric_count(fault_org) == expected

    # The reaper hands the killed job back: it restarts from the stored file and ends exact.
    job = Job.objects.get(pk=stale.job_id)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - dt.timedelta(hours=1))
    assert run_job(job.pk) == "succeeded"
    stale.refresh_from_db()
    assert (stale.status, stale.rows_loaded) == ("succeeded", 50)
    assert metric_count(fault_org) == expected


def reds_count(org) -> tuple[int, int]:
    """Read on an autocommit connection of its own: the test's transaction must hold no lock on the
    partitioned table, or the subprocess's CREATE TABLE ... PARTITION OF would wait for it."""
    import psycopg

    cfg = connection.settings_dict
    with psycopg.connect(
        dbname=cfg["NAME"],
        user=cfg["USER"],
        host=cfg["HOST"] or None,
        port=cfg["PORT"] or None,
        password=cfg["PASSWORD"] or None,
        autocommit=True,
    ) as conn:
        events = conn.execute(f'SELECT count(*) FROM "{org.schema_name}".ingestion_store_redsevent').fetchone()[0]
        impressions = conn.execute(
            f"SELECT coalesce(sum(impressions), 0) FROM \"{org.schema_name}\".campaigns_dailymetric WHERE source = 'reds'"
        ).fetchone()[0]
    return events, int(impressions)


def test_reds_kill_mid_run_then_rerun_is_exact(fault_org, tmp_path, settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(settings.MEDIA_ROOT)},
        },
    }
    header = "event_timestamp|advertiser_id|campaign_id|line_item_id|event_type|cost_usd|audience_id|user_id|user_id_type|conversion_value"
    rows = [f"2026-11-20T05:00:{n:02d}Z|faultadv|c1|li1|impression|0.001|a|u{n}|UID2|" for n in range(40)]
    path = tmp_path / "reds-fault.psv"
    path.write_text("\n".join([header, *rows]) + "\n")
    killed = cli("reds", str(path), fault="reds:after_events")
    assert killed.returncode == 137, killed.stderr
    assert reds_count(fault_org) == (0, 0)
    ok = cli("reds", str(path))
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["routed"] == {SLUG: 40}
    assert reds_count(fault_org) == (40, 40)
    again = cli("reds", str(path))  # the same file again: replaced, not doubled
    assert again.returncode == 0 and reds_count(fault_org) == (40, 40)
