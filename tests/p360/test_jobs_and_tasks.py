"""Background work: schema stamping, fail-closed tenant tasks, job lifecycle (trust 5, 6, 20, 22, 23)."""

from __future__ import annotations

import pytest
from django.db import connection
from django_q.tasks import async_task, result

from p360.core.jobs.config import validate_q_cluster
from p360.core.jobs.dispatch import MissingOrgSchema, enqueue_for_org, org_task, run_in_schema
from p360.core.jobs.models import Job, JobStatus
from p360.core.jobs.services import _claim, job_start, run_job

pytestmark = pytest.mark.django_db


@org_task
def schema_and_canary() -> tuple[str, str]:
    from audiences.models import Audience

    return connection.schema_name, Audience.objects.get(pk=1).name


def test_task_enqueued_for_an_org_runs_in_its_schema(acme, globex):
    for org in (acme, globex):
        task_id = enqueue_for_org(org, "tests.p360.test_jobs_and_tasks.schema_and_canary")
        assert result(task_id) == (org.schema_name, f"{org.slug}-canary-audience-1")
    assert connection.schema_name == "public"


def test_next_task_without_a_schema_is_refused(acme):
    enqueue_for_org(acme, "tests.p360.test_jobs_and_tasks.schema_and_canary")
    # Same worker code path, no schema stamped: the task fails closed instead of reading public
    # (in sync mode django-q re-raises the task's exception to the caller).
    with pytest.raises(MissingOrgSchema, match="must run inside an organisation schema"):
        async_task("tests.p360.test_jobs_and_tasks.schema_and_canary")
    assert connection.schema_name == "public"


def test_run_in_schema_refuses_missing_public_or_unknown_schema():
    for schema in (None, "", "public", "org_nope"):
        with pytest.raises(MissingOrgSchema):
            run_in_schema(schema, "tests.p360.test_jobs_and_tasks.schema_and_canary")


def test_run_in_schema_refuses_inactive_org(acme, super_admin):
    from tenants.services import org_set_active

    org_set_active(org=acme, active=False, actor=super_admin)
    with pytest.raises(MissingOrgSchema):
        run_in_schema(acme.schema_name, "tests.p360.test_jobs_and_tasks.schema_and_canary")


def test_enqueue_without_an_org_is_refused():
    with pytest.raises(MissingOrgSchema):
        enqueue_for_org(None, "tests.p360.test_jobs_and_tasks.schema_and_canary")


def test_health_check_job_runs_in_the_org_and_records_progress(acme, super_admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = job_start(kind="org.health_check", org=acme, actor=super_admin)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["schema"] == "org_acme"
    assert job.result["pending_migrations"] == 0
    assert job.result["row_counts"]["audiences.audience"] == 2
    assert job.attempts == 1 and job.percent == 100.0
    assert job.progress_done == job.progress_total
    assert job.log and "org_acme" in job.log[-1]["message"]


def test_a_job_delivered_twice_runs_once(acme, super_admin):
    job = job_start(kind="org.health_check", org=acme, actor=super_admin)
    assert run_job(job.pk) == JobStatus.SUCCEEDED
    assert run_job(job.pk) == "skipped"
    job.refresh_from_db()
    assert job.attempts == 1


def test_a_job_that_keeps_losing_its_worker_fails_after_max_attempts(acme, super_admin):
    job = job_start(kind="org.health_check", org=acme, actor=super_admin, max_attempts=2)
    for _ in range(2):  # claimed, then the worker "dies": the heartbeat goes stale
        assert _claim(job.pk) is not None
        Job.objects.filter(pk=job.pk).update(heartbeat_at="2000-01-01T00:00:00Z")
    assert _claim(job.pk) is None
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "gave up after 2 attempts" in job.error


def test_a_failing_handler_marks_the_job_failed_with_the_reason(acme, super_admin, monkeypatch):
    from p360.core.jobs import services

    def boom(ctx):
        raise services.JobError("the file has no header row")

    monkeypatch.setitem(services._REGISTRY, "test.boom", services.JobKind("test.boom", "Boom", boom, True))
    job = job_start(kind="test.boom", org=acme, actor=super_admin)
    assert run_job(job.pk) == JobStatus.FAILED
    job.refresh_from_db()
    assert job.error == "the file has no header row"


def test_per_org_job_without_org_is_refused():
    from p360.core.jobs.services import JobError

    with pytest.raises(JobError):
        job_start(kind="org.health_check", org=None)


@pytest.mark.parametrize(
    ("conf", "problem"),
    [
        ({"timeout": 60, "retry": 60, "max_attempts": 3}, "retry (60) must be greater than timeout (60)"),
        ({"timeout": None, "retry": 60, "max_attempts": 3}, "timeout must be a positive"),
        ({"timeout": 60, "retry": 90, "max_attempts": 0}, "max_attempts must be at least 1"),
    ],
)
def test_unsafe_task_cluster_settings_are_refused(conf, problem):
    assert any(problem in p for p in validate_q_cluster(conf))


def test_shipped_task_cluster_settings_are_safe(settings):
    assert validate_q_cluster(settings.Q_CLUSTER) == []


def test_a_task_run_inline_gives_its_caller_back_its_schema(acme, globex):
    # Session 12: a job queued inside another job (sync mode runs it at the caller's commit) left the caller in
    # public: the import job's next query failed ("relation audiences_audienceversion does not exist").
    from django_tenants.utils import schema_context

    with schema_context(acme.schema_name):
        task_id = enqueue_for_org(globex, "tests.p360.test_jobs_and_tasks.schema_and_canary")
        assert result(task_id) == (globex.schema_name, "globex-canary-audience-1")
        assert connection.schema_name == acme.schema_name
        with pytest.raises(MissingOrgSchema):  # a task that raises gives it back too
            async_task("tests.p360.test_jobs_and_tasks.schema_and_canary")
        assert connection.schema_name == acme.schema_name
    assert connection.schema_name == "public"
