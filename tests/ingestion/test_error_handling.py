"""Issue 15 (document 004 A.4): tracebacks for staff only, deadlocks retried once, a circuit breaker per source."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.db import connection
from django_tenants.utils import schema_context

from campaigns.models import ClientSettings, DailyMetric
from campaigns.selectors import client_settings
from ingestion.models import IngestionRun, SourceBreaker
from ingestion.tasks import surfside_daily
from p360.core.audit.models import AuditEvent
from p360.core.faults import reset_raised_faults
from p360.core.jobs.deadlock import is_deadlock
from p360.core.jobs.models import Job
from p360.core.jobs.services import job_run_inline
from tests.ingestion.helpers import DAY, SURFSIDE_HEADER, ingest, ingest_failing, set_cpm, surfside_rows, write_csv

pytestmark = pytest.mark.django_db
OPS = "ops-alerts@p360.test"


@pytest.fixture(autouse=True)
def _faults(monkeypatch, settings):
    reset_raised_faults()
    settings.P360_OPS_ALERT_EMAILS = [OPS]
    yield
    reset_raised_faults()


@pytest.fixture
def surfside_file(acme, tmp_path):
    set_cpm(acme, "12.5")
    return write_csv(tmp_path / "media-report-2026-11-20.csv", SURFSIDE_HEADER, surfside_rows(n=4))


def acme_metric_count(acme) -> int:
    with schema_context(acme.schema_name):
        return DailyMetric.objects.filter(source="surfside").count()


# --- tracebacks: kept for staff, never shown to marketers ---------------------------------------------------------


def test_a_crashed_run_keeps_its_traceback_for_staff_and_shows_marketers_a_clean_message(
    acme, surfside_file, monkeypatch, super_admin, manager, acme_marketer, login
):
    monkeypatch.setenv("P360_FAULT_RAISE", "ingest:load")
    ingest_failing("surfside", str(surfside_file), "--org", "acme", "--date", DAY.isoformat())
    run = IngestionRun.objects.get(source="surfside", org=acme)
    assert run.status == "failed"
    assert "Traceback (most recent call last)" in run.traceback and "_execute_metrics" in run.traceback
    assert "RuntimeError: fault injected at ingest:load" in run.traceback
    assert "RuntimeError" not in run.error and f"run #{run.pk}" in run.error
    job = Job.objects.get(pk=run.job_id)
    assert "RuntimeError" in job.traceback and "RuntimeError" not in job.error
    assert acme_metric_count(acme) == 0

    # Staff read it in both admins: the global admin and the campaign manager's org admin.
    for client, url in (
        (login(super_admin), f"/admin/ingestion/ingestionrun/{run.pk}/change/"),
        (login(manager), f"/o/acme/admin/ingestion/ingestionrun/{run.pk}/change/"),
        (login(manager), f"/o/acme/admin/jobs/job/{job.pk}/change/"),
    ):
        page = client.get(url)
        assert page.status_code == 200, url
        assert "Traceback (most recent call last)" in page.content.decode(), url

    # Marketers: the run page shows the clean message only, and they have no admin.
    marketer = login(acme_marketer)
    page = marketer.get(f"/o/acme/ingestion/runs/{run.pk}/").content.decode()
    assert f"reference: run #{run.pk}" in page
    assert "Traceback" not in page and "RuntimeError" not in page and "fault injected" not in page
    assert marketer.get(f"/o/acme/admin/ingestion/ingestionrun/{run.pk}/change/").status_code in (302, 403, 404)


def test_a_source_error_keeps_its_own_message(acme, tmp_path):
    path = write_csv(tmp_path / "empty.csv", SURFSIDE_HEADER, [])
    ingest_failing("surfside", str(path), "--org", "acme")
    run = IngestionRun.objects.get(source="surfside", org=acme)
    assert "no data rows" in run.error and run.traceback == ""  # an expected refusal, not a crash


# --- deadlocks: retried once --------------------------------------------------------------------------------------


def test_the_injected_fault_is_postgresqls_real_deadlock_error(monkeypatch):
    import psycopg.errors
    from django.db import OperationalError

    from p360.core.faults import deadlock_point

    monkeypatch.setenv("P360_FAULT_DEADLOCK", "probe")
    with pytest.raises(OperationalError) as caught:
        deadlock_point("probe")
    assert isinstance(caught.value.__cause__, psycopg.errors.DeadlockDetected)
    assert caught.value.__cause__.sqlstate == "40P01" and is_deadlock(caught.value)
    deadlock_point("probe")  # once only: the second call passes
    with connection.cursor() as cursor:  # the connection is usable after the victim's rollback
        cursor.execute("SELECT 1")


def test_a_deadlock_in_the_load_is_retried_once_and_loads_exactly_once(acme, surfside_file, monkeypatch):
    monkeypatch.setenv("P360_FAULT_DEADLOCK", "ingest:load")
    result = ingest("surfside", str(surfside_file), "--org", "acme", "--date", DAY.isoformat())
    assert (result["status"], result["rows_loaded"]) == ("succeeded", 4)
    assert acme_metric_count(acme) == 4  # the rolled-back first attempt left nothing behind: no doubles
    run = IngestionRun.objects.get(pk=result["run_id"])
    assert AuditEvent.objects.filter(action="ingestion.deadlock_retried", entity_id=str(run.pk)).count() == 1
    assert any("deadlock" in line["message"] for line in Job.objects.get(pk=run.job_id).log)


def test_a_second_deadlock_fails_the_run_cleanly(acme, surfside_file, monkeypatch):
    monkeypatch.setenv("P360_FAULT_DEADLOCK", "ingest:load:2")
    ingest_failing("surfside", str(surfside_file), "--org", "acme", "--date", DAY.isoformat())
    run = IngestionRun.objects.get(source="surfside", org=acme)
    assert run.status == "failed" and "deadlock" in run.error and "DeadlockDetected" in run.traceback
    assert acme_metric_count(acme) == 0
    job = Job.objects.get(pk=run.job_id)
    assert job.status == "failed" and job.attempts == 1  # not retried a third time by the job runner


def test_a_job_that_deadlocks_is_retried_once(acme, monkeypatch):
    monkeypatch.setenv("P360_FAULT_DEADLOCK", "job:run")
    job = job_run_inline(kind="org.health_check", org=acme)
    assert job.status == "succeeded"
    assert any("deadlock" in line["message"] for line in job.log)
    reset_raised_faults()
    monkeypatch.setenv("P360_FAULT_DEADLOCK", "job:run:2")
    job = job_run_inline(kind="org.health_check", org=acme)
    assert job.status == "failed" and "DeadlockDetected" in job.traceback and "Deadlock" not in job.error


# --- circuit breaker: five failures open it, the schedule pauses, a manual success closes it ------------------------


def enable_surfside(org) -> None:
    with schema_context(org.schema_name):
        ClientSettings.objects.filter(pk=client_settings().pk).update(surfside_enabled=True)


def scheduled_pull(day: dt.date, django_capture_on_commit_callbacks) -> list[int]:
    with django_capture_on_commit_callbacks(execute=True):
        return surfside_daily(day.isoformat())


def ops_mails() -> list:
    return [m for m in mail.outbox if OPS in m.to]


def test_five_failures_open_the_breaker_pause_the_schedule_alert_and_a_manual_run_closes_it(
    acme, globex, surfside_file, settings, super_admin, manager, login, django_capture_on_commit_callbacks
):
    settings.P360_SURFSIDE_BUCKET = ""  # the source cannot deliver: every pull fails
    enable_surfside(acme)
    start = dt.date(2026, 11, 1)
    for n in range(4):
        assert len(scheduled_pull(start + dt.timedelta(days=n), django_capture_on_commit_callbacks)) == 1
    breaker = SourceBreaker.objects.get(source="surfside", org=acme)
    assert (breaker.state, breaker.consecutive_failures, ops_mails()) == ("closed", 4, [])

    scheduled_pull(start + dt.timedelta(days=4), django_capture_on_commit_callbacks)  # the fifth failure
    breaker.refresh_from_db()
    assert (breaker.state, breaker.consecutive_failures) == ("open", 5)
    assert "Surfside is not configured" in breaker.last_error
    [alert] = ops_mails()
    assert "Surfside paused for Acme Corporation" in alert.subject and "Run now" in alert.body
    assert AuditEvent.objects.filter(action="ingestion.breaker_opened", org_slug="acme").count() == 1

    # Visible in both admins: dashboard flag and a banner on the breakers page.
    for client, prefix in ((login(super_admin), ""), (login(manager), "/o/acme")):
        dashboard = client.get(f"{prefix}/admin/").content.decode()
        assert "Sources paused (circuit breaker open)" in dashboard and "OPEN: Surfside (acme)" in dashboard
        listing = client.get(f"{prefix}/admin/ingestion/sourcebreaker/").content.decode()
        assert "Circuit breaker OPEN" in listing
    # globex's admin knows nothing of acme's breaker.
    assert (
        "Circuit breaker OPEN"
        not in login(super_admin).get("/o/globex/admin/ingestion/sourcebreaker/").content.decode()
    )

    # Paused: the schedule starts nothing for acme, but still serves another org.
    enable_surfside(globex)
    runs_before = IngestionRun.objects.filter(org=acme).count()
    started = scheduled_pull(start + dt.timedelta(days=5), django_capture_on_commit_callbacks)
    assert [IngestionRun.objects.get(pk=pk).org.slug for pk in started] == ["globex"]
    assert IngestionRun.objects.filter(org=acme).count() == runs_before

    # "Run now" in the org admin: a manual run; it fails again (still unconfigured), so the breaker stays open.
    client = login(manager)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/o/acme/admin/ingestion/sourcebreaker/",
            {"action": "run_now_breakers", "_selected_action": [breaker.pk]},
            follow=True,
        )
    assert "started run #" in response.content.decode()
    manual = IngestionRun.objects.filter(org=acme).latest("id")
    assert (manual.trigger, manual.status) == ("retry", "failed")
    breaker.refresh_from_db()
    assert breaker.state == "open" and len(ops_mails()) == 1  # one alert per opening, not one per failure

    # A successful manual run (the file loaded by command) closes it and the schedule resumes.
    result = ingest("surfside", str(surfside_file), "--org", "acme", "--date", DAY.isoformat())
    assert result["status"] == "succeeded"
    breaker.refresh_from_db()
    assert (breaker.state, breaker.consecutive_failures) == ("closed", 0)
    assert AuditEvent.objects.filter(action="ingestion.breaker_closed", org_slug="acme").count() == 1
    started = scheduled_pull(start + dt.timedelta(days=6), django_capture_on_commit_callbacks)
    assert sorted(IngestionRun.objects.get(pk=pk).org.slug for pk in started) == ["acme", "globex"]


def test_reset_in_the_global_admin_closes_an_open_breaker(acme, super_admin, login):
    breaker = SourceBreaker.objects.create(source="surfside", org=acme, state="open", consecutive_failures=5)
    response = login(super_admin).post(
        "/admin/ingestion/sourcebreaker/",
        {"action": "reset_breakers", "_selected_action": [breaker.pk]},
        follow=True,
    )
    assert response.status_code == 200 and "Reset 1 of 1" in response.content.decode()
    breaker.refresh_from_db()
    assert (breaker.state, breaker.consecutive_failures) == ("closed", 0)
    assert AuditEvent.objects.filter(action="ingestion.breaker_closed", actor_email=super_admin.email).exists()


def test_uploads_by_people_do_not_count_towards_the_breaker(acme, tmp_path, manager, login):
    path = write_csv(tmp_path / "empty.csv", SURFSIDE_HEADER, [])
    for _ in range(6):
        with path.open("rb") as handle:
            login(manager).post(
                "/o/acme/admin/ingestion/ingestionrun/upload-facebook/", {"source": "surfside", "file": handle}
            )
    assert IngestionRun.objects.filter(org=acme, status="failed").count() >= 1
    assert not SourceBreaker.objects.filter(org=acme, state="open").exists()


def test_a_real_deadlock_between_two_sessions_is_recognised_and_the_retry_succeeds():
    """Two sessions lock two rows in opposite orders; PostgreSQL kills one (40P01). The victim's work, run through
    `retry_once_on_deadlock`, succeeds on its second attempt once the other session has committed."""
    import threading

    import psycopg

    from audiences.loader import connection_kwargs
    from p360.core.jobs.deadlock import retry_once_on_deadlock

    table = "i15_deadlock_probe"
    with psycopg.connect(**connection_kwargs(), autocommit=True) as setup:
        setup.execute(f"DROP TABLE IF EXISTS {table}")
        setup.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, n int NOT NULL)")
        setup.execute(f"INSERT INTO {table} VALUES (1, 0), (2, 0)")
    try:
        both_hold_one = threading.Barrier(2, timeout=10)
        attempts: list[str] = []
        retried: list[BaseException] = []

        def session(first: int, second: int, name: str) -> None:
            with psycopg.connect(**connection_kwargs()) as conn:
                conn.execute("SET deadlock_timeout = '100ms'")

                def work() -> None:
                    attempts.append(name)
                    with conn.transaction():
                        conn.execute(f"UPDATE {table} SET n = n + 1 WHERE id = %s", [first])
                        if len(attempts) <= 2:  # only the first round meets in the middle
                            both_hold_one.wait()
                        conn.execute(f"UPDATE {table} SET n = n + 1 WHERE id = %s", [second])

                retry_once_on_deadlock(work, on_retry=retried.append)

        threads = [
            threading.Thread(target=session, args=(1, 2, "a")),
            threading.Thread(target=session, args=(2, 1, "b")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        assert len(retried) == 1 and isinstance(retried[0], psycopg.errors.DeadlockDetected)
        assert is_deadlock(retried[0]) and len(attempts) == 3  # one session ran twice
        with psycopg.connect(**connection_kwargs(), autocommit=True) as check:
            rows = check.execute(f"SELECT id, n FROM {table} ORDER BY id").fetchall()
        assert rows == [(1, 2), (2, 2)]  # both sessions' work, each applied exactly once
    finally:
        with psycopg.connect(**connection_kwargs(), autocommit=True) as teardown:
            teardown.execute(f"DROP TABLE IF EXISTS {table}")
