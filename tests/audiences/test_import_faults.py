"""A worker killed mid-import (SIGKILL inside the write transaction): nothing half-written, and the
job, handed back by the reaper, ends with exactly the source's rows (trust: crash mid-job)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django_tenants.utils import schema_context

from audiences import records
from audiences.models import Audience, AudienceImport, ImportStatus
from p360.core.jobs.models import Job, JobStatus
from p360.core.jobs.services import reap_stale_jobs
from tests.audiences.committed import drop_committed_import
from tests.cli import run_manage

pytestmark = [pytest.mark.slow, pytest.mark.django_db]
NAME = "Killed mid-import"
ROWS = 3000


def _detached_tables() -> int:
    """Record tables of org_acme that are not attached partitions (a killed load's leftovers)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'org_acme' AND c.relname LIKE 'audiences_record_v%%' AND NOT c.relispartition"
        )
        return int(cursor.fetchone()[0])


@pytest.fixture(scope="module")
def killed_then_recovered(
    django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: Any
) -> Iterator[dict[str, Any]]:
    path: Path = tmp_path_factory.mktemp("fault") / "people.csv"
    lines = ["Email,First Name", *[f"person{i}@example.com,P{i}" for i in range(ROWS)], "person1@example.com,dup"]
    path.write_text("\n".join(lines) + "\n")
    outcome: dict[str, Any] = {}
    with django_db_blocker.unblock():
        env = {"P360_DB_NAME": connection.settings_dict["NAME"], "P360_FAULT": "audiences.import.copy"}
        killed = run_manage("import_audience", "--org", "acme", str(path), "--name", NAME, "--json", env=env)
        outcome["returncode"] = killed.returncode
        with schema_context("org_acme"):
            imp = AudienceImport.objects.get(audience_name=NAME)
            outcome["orphans_after_kill"] = _detached_tables()
            outcome["after_kill"] = {
                "import_status": imp.status,
                "audience_exists": Audience.objects.filter(name=NAME).exists(),
                "job_status": Job.objects.get(pk=imp.job_id).status if imp.job_id else None,
            }
        connection.set_schema_to_public()
        try:
            with override_settings(P360_JOB_STALE_SECONDS=0):
                outcome["reaped"] = reap_stale_jobs()
            with schema_context("org_acme"):
                imp.refresh_from_db()
                audience = Audience.objects.get(name=NAME)
                outcome["after_rerun"] = {
                    "import_status": imp.status,
                    "rows": (imp.rows_read, imp.rows_loaded, imp.rows_quarantined, imp.duplicates),
                    "records": records.count_version(audience.current_version_id),
                    "versions": audience.versions.count(),
                    "job_status": Job.objects.get(pk=imp.job_id).status,
                    "orphans": _detached_tables(),
                }
            yield outcome
        finally:
            drop_committed_import(NAME)
            Job.objects.filter(kind="audiences.import", status=JobStatus.RUNNING).update(status=JobStatus.FAILED)


def test_the_killed_import_left_nothing_half_written(killed_then_recovered: dict[str, Any]) -> None:
    assert killed_then_recovered["returncode"] == -9
    after = killed_then_recovered["after_kill"]
    assert after["import_status"] == ImportStatus.RUNNING
    assert after["audience_exists"] is False  # the audience, its version and rows were one transaction
    assert after["job_status"] == JobStatus.RUNNING


def test_the_reaped_job_loads_exactly_the_source(killed_then_recovered: dict[str, Any]) -> None:
    assert killed_then_recovered["reaped"] >= 1
    after = killed_then_recovered["after_rerun"]
    assert after["import_status"] == ImportStatus.SUCCEEDED
    assert after["job_status"] == JobStatus.SUCCEEDED
    assert after["rows"] == (ROWS + 1, ROWS, 0, 1)
    assert after["records"] == ROWS
    assert after["versions"] == 1
    assert killed_then_recovered["orphans_after_kill"] == 1  # the killed load's detached table...
    assert after["orphans"] == 0  # ...dropped by the re-run


@pytest.fixture(scope="module")
def merged_outside_a_transaction(
    django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: Any
) -> Iterator[list[dict[str, Any]]]:
    """Two imports with the merge rule in autocommit (as the task cluster runs them): the second merges
    into the first's records through parallel loader connections and a temporary key table."""
    from django.core.management import call_command

    folder = tmp_path_factory.mktemp("merge")
    first, second = folder / "one.csv", folder / "two.csv"
    first.write_text("Email,First Name,Company\na@x.com,,AcmeA\nb@x.com,B,\n")
    second.write_text("Email,First Name,Company\nA@x.com,Ann,Other\nc@x.com,C,CoC\n")
    name = "Merged in autocommit"
    with django_db_blocker.unblock():
        try:
            for path, rule in ((first, "first"), (second, "merge")):
                call_command(
                    "import_audience",
                    "--org",
                    "acme",
                    str(path),
                    "--name",
                    name,
                    "--dedupe",
                    rule,
                    stdout=io.StringIO(),
                )
            with schema_context("org_acme"):
                audience = Audience.objects.get(name=name)
                yield records.read_version(
                    audience.current_version_id, ["email_normalized", "first_name", "company_name"]
                ).to_dicts()
        finally:
            drop_committed_import(name)


def test_merge_into_existing_records_in_autocommit(merged_outside_a_transaction: list[dict[str, Any]]) -> None:
    by_email = {row["email_normalized"]: row for row in merged_outside_a_transaction}
    assert set(by_email) == {"a@x.com", "b@x.com", "c@x.com"}
    assert (by_email["a@x.com"]["first_name"], by_email["a@x.com"]["company_name"]) == ("Ann", "AcmeA")


@pytest.fixture(scope="module")
def disconnected_then_recovered(
    django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: Any
) -> Iterator[dict[str, Any]]:
    """The database ends the importing process's session during the load (as in a PostgreSQL restart)."""
    path: Path = tmp_path_factory.mktemp("disconnect") / "people.csv"
    path.write_text("Email\n" + "".join(f"p{i}@example.com\n" for i in range(500)))
    name = "Disconnected mid-import"
    outcome: dict[str, Any] = {}
    with django_db_blocker.unblock():
        env = {"P360_DB_NAME": connection.settings_dict["NAME"], "P360_FAULT": "audiences.import.copy:disconnect"}
        done = run_manage("import_audience", "--org", "acme", str(path), "--name", name, "--json", env=env)
        outcome["returncode"], outcome["stderr"] = done.returncode, done.stderr
        with schema_context("org_acme"):
            imp = AudienceImport.objects.get(audience_name=name)
            outcome["audience_exists"] = Audience.objects.filter(name=name).exists()
            outcome["status_after"] = imp.status
        connection.set_schema_to_public()
        try:
            with override_settings(P360_JOB_STALE_SECONDS=0):
                reap_stale_jobs()
                job = Job.objects.get(pk=imp.job_id)
                if job.status != JobStatus.RUNNING:  # the job was closed as failed: start the import again
                    from audiences.services import import_start

                    with schema_context("org_acme"):
                        import_start(imp=AudienceImport.objects.get(pk=imp.pk), actor=None, inline=True)
            with schema_context("org_acme"):
                imp.refresh_from_db()
                audience = Audience.objects.get(name=name)
                outcome["final"] = (
                    imp.status,
                    records.count_version(audience.current_version_id),
                    audience.versions.count(),
                )
                outcome["orphans"] = _detached_tables()
                outcome["cpu_seconds"] = imp.quality.get("cpu_seconds", {})
            yield outcome
        finally:
            drop_committed_import(name)
            Job.objects.filter(kind="audiences.import", status=JobStatus.RUNNING).update(status=JobStatus.FAILED)


def test_a_lost_database_session_mid_import_leaves_nothing_and_the_rerun_is_exact(
    disconnected_then_recovered: dict[str, Any],
) -> None:
    outcome = disconnected_then_recovered
    assert outcome["returncode"] != 0  # a clear failure, not a hang
    assert outcome["stderr"].strip().splitlines()[-1].startswith("error: the database connection was lost")
    assert outcome["status_after"] == ImportStatus.FAILED
    assert outcome["audience_exists"] is False
    assert outcome["final"] == (ImportStatus.SUCCEEDED, 500, 1)
    assert outcome["orphans"] == 0
    # the re-run loaded through the parallel COPY workers: their own CPU is reported beside the phases'
    assert {"normalise", "copy_workers"} <= set(outcome["cpu_seconds"])
    assert outcome["cpu_seconds"]["copy_workers"] > 0
