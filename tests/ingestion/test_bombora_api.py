"""Story 6.1: Bombora pickup through its API (httpx client against a local stand-in over real HTTP) as well as S3,
checked every hour: new files load once, in order; a file published later loads at the next check; a re-published
file loads again; rate limits and server errors are retried; a bad key fails clearly without stopping S3."""

from __future__ import annotations

import gzip

import pytest
from django_q.models import Schedule

from bombora.api import BomboraApi, BomboraApiError
from bombora.models import BomboraWeek
from ingestion import tasks
from ingestion.models import IngestionRun
from ingestion.sources.bombora_api import pickup
from p360.core.jobs.schedules import ensure_schedules
from tests.bombora_api_server import BomboraApiStandIn
from tests.ingestion.bombora_helpers import WEEK, scores, surge_line

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def server():
    stand_in = BomboraApiStandIn().start()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def api(server, settings):
    server.reset()
    settings.P360_BOMBORA_API_URL = server.base_url
    settings.P360_BOMBORA_API_KEY = server.key
    settings.P360_BOMBORA_API_MIN_INTERVAL = 0
    settings.P360_BOMBORA_BUCKET = ""
    return server


def gz(rows) -> bytes:
    return gzip.compress("".join(surge_line(*row) + "\n" for row in rows).encode())


def test_new_files_load_once_in_order_and_later_files_at_the_next_check(api):
    api.publish("Output_MasterSurgeFile_20261116.csv.gz", gz([("a.com", "CRM", 70)]))
    api.publish("Output_MasterSurgeFile_20261109.csv.gz", gz([("a.com", "CRM", 40)]))
    api.publish("readme.pdf", b"%PDF")
    runs = [IngestionRun.objects.get(pk=pk) for pk in pickup(inline=True)]
    assert [(r.file_name, r.status, r.trigger) for r in runs] == [
        ("Output_MasterSurgeFile_20261109.csv.gz", "succeeded", "schedule"),
        ("Output_MasterSurgeFile_20261116.csv.gz", "succeeded", "schedule"),
    ]
    assert runs[0].params["bombora_api_file"] and len(runs[0].content_hash) == 64
    assert max(BomboraWeek.objects.values_list("week", flat=True)) == WEEK
    assert scores() == [("a.com", "CRM", 70)]
    assert pickup(inline=True) == []  # the hourly check finds nothing new
    api.publish("Output_MasterSurgeFile_20261116.csv.gz", gz([("a.com", "CRM", 90)]))  # re-published
    assert len(pickup(inline=True)) == 1 and scores() == [("a.com", "CRM", 90)]
    api.publish("Output_MasterSurgeFile_20261123.csv.gz", gz([("b.com", "CRM", 61)]))  # arrives an hour later
    (run_id,) = tasks.bombora_pickup()  # the hourly task: a run is queued for the new file only
    run = IngestionRun.objects.get(pk=run_id)
    assert run.file_name == "Output_MasterSurgeFile_20261123.csv.gz" and run.trigger == "schedule"
    assert tasks.bombora_pickup() == []  # queued already: the next check does not take it twice


def test_rate_limits_and_server_errors_are_retried(api):
    api.publish("Output_MasterSurgeFile_20261116.csv.gz", gz([("c.com", "CRM", 75)]))
    api.fail_next("/v2/Surge/GetMetaData", [429, 503])
    api.fail_next("/v2/Surge/DownloadFile", [500])
    runs = [IngestionRun.objects.get(pk=pk) for pk in pickup(inline=True)]
    assert [r.status for r in runs] == ["succeeded"]
    statuses = [s for p, s in api.calls if p == "/v2/Surge/GetMetaData"]
    assert statuses == [429, 503, 200]


def test_a_bad_key_fails_clearly_and_the_hourly_task_keeps_going(api, settings):
    settings.P360_BOMBORA_API_KEY = "wrong"
    with pytest.raises(BomboraApiError, match="refused the key"):
        pickup(inline=True)
    assert tasks.bombora_pickup() == []  # logged; the S3 pickup (unset here) would still run


def test_a_download_that_keeps_failing_fails_its_run(api):
    api.publish("Output_MasterSurgeFile_20261116.csv.gz", gz([("c.com", "CRM", 75)]))
    api.fail_next("/v2/Surge/DownloadFile", [500] * 10)
    (run_id,) = pickup(inline=True)
    run = IngestionRun.objects.get(pk=run_id)
    assert run.status == "failed" and "failed after" in run.error


def test_client_gives_up_after_its_retries(server):
    sleeps: list[float] = []
    client = BomboraApi(server.base_url, server.key, retries=2, sleep=sleeps.append)
    server.fail_next("/v2/Surge/GetMetaData", [503, 503, 503])
    with pytest.raises(BomboraApiError, match="after 3 attempts"):
        client.files()
    assert sleeps == [1.0, 2.0]
    server.forced.clear()


def test_no_api_url_no_pickup(settings):
    settings.P360_BOMBORA_API_URL = ""
    assert pickup() == []


def test_the_pickup_is_checked_every_hour_by_default(settings):
    from django.conf import settings as live

    assert live.P360_BOMBORA_CRON.split()[1:] == ["*", "*", "*", "*"]  # minute fixed, every hour
    ensure_schedules()
    schedule = Schedule.objects.get(name="p360: Bombora pickup from S3")
    assert (schedule.func, schedule.cron) == ("ingestion.tasks.bombora_pickup", live.P360_BOMBORA_CRON)


def test_hourly_freshness_each_check_of_the_installed_schedule_loads_only_what_is_new(api):
    """Story 6.1's definition of done: the installed schedule fires every hour (so a file is loaded at most an hour
    after it arrives), and each firing -- the schedule's own function -- loads only the files that are new."""
    import datetime as dt
    import itertools
    from importlib import import_module

    from croniter import croniter

    ensure_schedules()
    schedule = Schedule.objects.get(name="p360: Bombora pickup from S3")
    fires = croniter(schedule.cron, dt.datetime(2026, 12, 6, 0, 0, tzinfo=dt.UTC))
    times = [fires.get_next(dt.datetime) for _ in range(49)]
    assert {b - a for a, b in itertools.pairwise(times)} == {dt.timedelta(hours=1)}
    module, name = schedule.func.rsplit(".", 1)
    check = getattr(import_module(module), name)  # what django-q runs each hour

    def loaded() -> list[str]:
        return sorted(IngestionRun.objects.filter(source="bombora").values_list("file_name", flat=True))

    api.publish("Output_MasterSurgeFile_20261109.csv.gz", gz([("a.com", "CRM", 40)]))
    assert len(check()) == 1  # hour 1: the file that arrived
    assert check() == []  # hour 2: nothing new, nothing loaded again
    api.publish("Output_MasterSurgeFile_20261116.csv.gz", gz([("a.com", "CRM", 70)]))
    assert len(check()) == 1  # hour 3: only the new file
    assert loaded() == ["Output_MasterSurgeFile_20261109.csv.gz", "Output_MasterSurgeFile_20261116.csv.gz"]
