"""Scheduled Bombora pickup from S3 against moto's server over real HTTP: new files load once, in key order;
a re-delivered file (new content, same key) loads again; no bucket means nothing happens."""

from __future__ import annotations

import gzip

import pytest
from django_q.models import Schedule

from bombora.models import BomboraWeek
from ingestion import tasks
from ingestion.models import IngestionRun
from ingestion.sources.bombora_s3 import pickup
from p360.core.jobs.schedules import ensure_schedules
from tests.ingestion.bombora_helpers import WEEK, scores, surge_line
from tests.ingestion.helpers import moto_bucket

pytestmark = pytest.mark.django_db
BUCKET = "bombora-drop"


@pytest.fixture(scope="module")
def s3_server():
    with moto_bucket(BUCKET) as server:
        yield server


@pytest.fixture
def s3(s3_server, settings):
    endpoint, client = s3_server
    settings.P360_BOMBORA_BUCKET = BUCKET
    settings.P360_BOMBORA_PREFIX = "surge/"
    settings.P360_BOMBORA_ENDPOINT_URL = endpoint
    settings.P360_BOMBORA_ACCESS_KEY_ID = "test"
    settings.P360_BOMBORA_SECRET_ACCESS_KEY = "test"
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    return client


def put(client, key: str, rows) -> None:
    body = gzip.compress("".join(surge_line(*row) + "\n" for row in rows).encode())
    client.put_object(Bucket=BUCKET, Key=key, Body=body)


def test_new_files_load_once_in_order(s3):
    put(s3, "surge/Output_MasterSurgeFile_20261116.csv.gz", [("a.com", "CRM", 70)])
    put(s3, "surge/Output_MasterSurgeFile_20261109.csv.gz", [("a.com", "CRM", 40)])
    put(s3, "surge/readme.pdf", [("x.com", "CRM", 1)])
    put(s3, "other/Output_MasterSurgeFile_20261102.csv.gz", [("x.com", "CRM", 1)])
    run_ids = pickup(inline=True)
    runs = [IngestionRun.objects.get(pk=pk) for pk in run_ids]
    assert [(r.file_name, r.status, r.trigger, r.org_id) for r in runs] == [
        ("Output_MasterSurgeFile_20261109.csv.gz", "succeeded", "schedule", None),
        ("Output_MasterSurgeFile_20261116.csv.gz", "succeeded", "schedule", None),
    ]
    assert (
        runs[0].params["s3_key"] == "surge/Output_MasterSurgeFile_20261109.csv.gz" and len(runs[0].content_hash) == 64
    )
    assert sorted(BomboraWeek.objects.values_list("week", flat=True))[-1] == WEEK
    assert scores() == [("a.com", "CRM", 70)]
    assert pickup(inline=True) == []  # nothing new

    put(s3, "surge/Output_MasterSurgeFile_20261116.csv.gz", [("a.com", "CRM", 90)])  # re-delivered
    again = pickup(inline=True)
    assert len(again) == 1 and scores() == [("a.com", "CRM", 90)]

    # The admin's re-run fetches the same object again.
    from ingestion.services import rerun

    put(s3, "surge/Output_MasterSurgeFile_20261116.csv.gz", [("a.com", "CRM", 95)])
    redo = rerun(run=IngestionRun.objects.get(pk=again[0]), actor=None, inline=True)
    assert redo.status == "succeeded" and redo.params["s3_key"].endswith("20261116.csv.gz")
    assert scores() == [("a.com", "CRM", 95)]


def test_bad_file_fails_its_run_only(s3):
    s3.put_object(Bucket=BUCKET, Key="surge/broken_20261116.csv", Body=b"<html>oops</html>\n")
    put(s3, "surge/good_20261109.csv.gz", [("b.com", "CRM", 65)])
    runs = [IngestionRun.objects.get(pk=pk) for pk in pickup(inline=True)]
    assert [r.status for r in runs] == ["failed", "succeeded"]
    assert "not a Bombora file" in runs[0].error


def test_no_bucket_no_pickup(settings):
    settings.P360_BOMBORA_BUCKET = ""
    assert tasks.bombora_pickup() == []


def test_schedule_is_installed_with_its_cron(settings):
    settings.P360_BOMBORA_CRON = "30 8 * * 2"
    ensure_schedules()
    schedule = Schedule.objects.get(name="p360: Bombora pickup from S3")
    assert (schedule.func, schedule.cron) == ("ingestion.tasks.bombora_pickup", "30 8 * * 2")
