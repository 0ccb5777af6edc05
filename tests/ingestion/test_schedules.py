"""Schedules: created with their cron times; the tasks start one run per enabled org and day."""

from __future__ import annotations

import os
import time

import pytest
from django_q.models import Schedule
from django_tenants.utils import schema_context

from campaigns.models import ClientSettings
from campaigns.selectors import client_settings
from ingestion.models import IngestionRun
from ingestion.tasks import reds_hourly, surfside_daily, vibe_daily
from p360.core.jobs.schedules import ensure_schedules
from tests.ingestion.test_reds import events, write

pytestmark = pytest.mark.django_db


def test_schedules_have_the_documented_times_and_are_idempotent(settings):
    ensure_schedules()
    ensure_schedules()
    by_name = {
        s.name: s
        for s in Schedule.objects.filter(
            name__in=["p360: Surfside daily pull", "p360: Vibe daily pull", "p360: REDS hourly files"]
        )
    }
    assert by_name["p360: Surfside daily pull"].cron == "0 5 * * *"
    assert by_name["p360: Vibe daily pull"].cron == "0 6 * * *"
    assert by_name["p360: REDS hourly files"].cron == "0 * * * *"
    assert all(s.schedule_type == Schedule.CRON for s in by_name.values())
    settings.P360_SURFSIDE_CRON = "30 4 * * *"
    ensure_schedules()
    assert Schedule.objects.get(name="p360: Surfside daily pull").cron == "30 4 * * *"


def enable(org, **flags):
    with schema_context(org.schema_name):
        ClientSettings.objects.filter(pk=client_settings().pk).update(**flags)


def test_surfside_task_starts_a_run_for_yesterday_per_enabled_org(acme, globex, django_capture_on_commit_callbacks):
    enable(acme, surfside_enabled=True)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run_ids = surfside_daily("2026-11-20")
    runs = list(IngestionRun.objects.filter(pk__in=run_ids))
    assert [(r.org.slug, str(r.run_date), r.trigger) for r in runs] == [("acme", "2026-11-20", "schedule")]
    assert len(callbacks) == 1  # one job handed to the cluster


def test_vibe_task_repulls_the_day_before(acme, django_capture_on_commit_callbacks):
    enable(acme, vibe_enabled=True)
    with django_capture_on_commit_callbacks(execute=False):
        run_ids = vibe_daily("2026-11-20")
    assert sorted(str(r.run_date) for r in IngestionRun.objects.filter(pk__in=run_ids)) == ["2026-11-19", "2026-11-20"]


def test_reds_task_loads_each_inbox_file_once(acme, tmp_path, django_capture_on_commit_callbacks):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    old = write(inbox, "reds-2026112005.psv", events("acme01"))
    fresh = write(inbox, "reds-2026112006.psv", events("acme01", hour=6))
    past = time.time() - 3600
    os.utime(old, (past, past))
    with django_capture_on_commit_callbacks(execute=True):
        first = reds_hourly(str(inbox))
    assert len(first) == 1 and IngestionRun.objects.get(pk=first[0]).file_name == old.name
    os.utime(fresh, (past, past))
    with django_capture_on_commit_callbacks(execute=True):
        second = reds_hourly(str(inbox))
    assert [IngestionRun.objects.get(pk=pk).file_name for pk in second] == [fresh.name]
    with django_capture_on_commit_callbacks(execute=True):
        assert reds_hourly(str(inbox)) == []
