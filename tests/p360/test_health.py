"""/healthz: database, task cluster heartbeat, storage; 200 when all are well, 503 otherwise."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from p360.core.jobs.models import WorkerHeartbeat
from p360.core.jobs.services import record_heartbeat

pytestmark = pytest.mark.django_db


def test_healthy_when_a_worker_reported_recently(client, settings, tmp_path):
    record_heartbeat()
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {name for name, check in body["checks"].items() if check["ok"]} == {"database", "task_cluster", "storage"}


def test_unhealthy_without_a_cluster_heartbeat(client):
    WorkerHeartbeat.objects.all().delete()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["task_cluster"]["ok"] is False


def test_unhealthy_when_the_heartbeat_is_stale(client):
    WorkerHeartbeat.objects.update_or_create(name="old", defaults={"seen_at": timezone.now() - dt.timedelta(hours=1)})
    WorkerHeartbeat.objects.exclude(name="old").delete()
    assert client.get("/healthz").status_code == 503
