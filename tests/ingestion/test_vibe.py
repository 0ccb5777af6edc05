"""Vibe through its async reporting API, against the local stand-in (tests/vibe_server.py)."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time

import pytest
from django.core import mail
from django.db import connection, connections
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns.models import ClientSettings
from campaigns.selectors import client_settings
from campaigns.services import client_settings_save
from ingestion.models import IngestionRun, VibeReportRequest
from ingestion.sources.vibe import VibeError, acquire_creation_slot
from p360.core.crypto import fingerprint
from tests.ingestion.helpers import ingest, ingest_failing, metrics, set_cpm
from tests.vibe_server import VibeStandIn

pytestmark = pytest.mark.django_db
KEY = "vibe-key-acme-123"


@pytest.fixture(scope="module")
def vibe_server():
    server = VibeStandIn({KEY: {"adv-acme"}, "other-key": {"adv-other"}}).start()
    yield server
    server.stop()


@pytest.fixture
def vibe(vibe_server, settings, acme):
    vibe_server.reset()
    settings.P360_VIBE_BASE_URL = vibe_server.base_url
    settings.P360_VIBE_POLL_SECONDS = 0.05
    settings.P360_VIBE_POLL_TIMEOUT = 5
    settings.P360_VIBE_BACKOFF_BASE = 0.05
    settings.P360_VIBE_MAX_RETRIES = 4
    set_cpm(acme, "25")
    with schema_context(acme.schema_name):
        row = client_settings()
        row.vibe_enabled, row.vibe_advertiser_id = True, "adv-acme"
        client_settings_save(settings_row=row, actor=None, vibe_api_key=KEY)
    return vibe_server


def test_report_is_created_polled_downloaded_and_loaded(vibe, acme):
    vibe.ready_after = 0.15
    result = ingest("vibe", "--org", "acme", "--date", "2026-11-20")
    vibe.ready_after = 0
    assert (result["status"], result["rows_read"], result["rows_loaded"]) == ("succeeded", 3, 3)
    rows = metrics(acme, source="vibe")
    assert sum(m.impressions for m in rows) == 21500 and rows[0].campaign.name == "CTV Launch"
    assert next(c[:3] for c in vibe.calls if c[1] != "/get_report_status") == ("POST", "/create_async_report", 200)
    assert sum(1 for c in vibe.calls if c[1] == "/get_report_status") >= 2  # polled until done
    assert all(c[3] == KEY for c in vibe.calls if not c[1].startswith("/download"))
    assert all(c[3] == "" for c in vibe.calls if c[1].startswith("/download"))  # the key never leaves for the link
    assert VibeReportRequest.objects.filter(key_hash=fingerprint(KEY)).count() == 1


def test_api_key_is_stored_encrypted(vibe, acme):
    with schema_context(acme.schema_name):
        stored = ClientSettings.objects.get().vibe_api_key_encrypted
    assert KEY not in stored and stored.startswith("gAAAA")


def test_429_then_500_then_success_honours_retry_after(vibe, acme):
    vibe.fail_next("/create_async_report", [429, 500])
    started = time.monotonic()
    result = ingest("vibe", "--org", "acme", "--date", "2026-11-20")
    assert result["status"] == "succeeded" and result["rows_loaded"] == 3
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 was honoured
    statuses = [c[2] for c in vibe.calls if c[1] == "/create_async_report"]
    assert statuses == [429, 500, 200]
    run = IngestionRun.objects.get(pk=result["run_id"])
    assert run.params["retry_wait_s"] >= 1.0


def test_5xx_on_every_try_fails_after_the_budget(vibe, acme):
    vibe.fail_next("/get_report_status", [503] * 10)
    message, result = ingest_failing("vibe", "--org", "acme", "--date", "2026-11-20")
    assert "Vibe kept failing (HTTP 503) after 4 retries" in message and result["status"] == "failed"
    assert metrics(acme) == []


def test_never_finishing_report_times_out_fails_and_alerts(vibe, acme, settings):
    settings.P360_VIBE_POLL_TIMEOUT = 0.4
    vibe.never_finish = True
    message, result = ingest_failing("vibe", "--org", "acme", "--date", "2026-11-20")
    assert "was not ready after 0 s" in message or "was not ready after" in message
    assert result["status"] == "failed" and metrics(acme) == []
    (alert,) = mail.outbox
    assert "Vibe ingestion failed" in alert.subject and "not ready" in alert.body


def test_wrong_key_is_a_clear_failure(vibe, acme):
    with schema_context(acme.schema_name):
        client_settings_save(settings_row=client_settings(), actor=None, vibe_api_key="wrong")
    message, _ = ingest_failing("vibe", "--org", "acme", "--date", "2026-11-20")
    assert "Vibe refused the API key (403)" in message


def test_not_configured(vibe_server, settings, globex):
    message, _ = ingest_failing("vibe", "--org", "globex", "--date", "2026-11-20")
    assert "Vibe is not configured for globex" in message


def test_rate_limit_ledger_in_the_database_blocks_the_16th_creation(vibe, acme, settings):
    settings.P360_VIBE_RATE_WAIT_MAX = 0
    now = timezone.now()
    VibeReportRequest.objects.bulk_create(
        VibeReportRequest(key_hash=fingerprint(KEY), created_at=now - dt.timedelta(minutes=m)) for m in range(15)
    )
    message, _ = ingest_failing("vibe", "--org", "acme", "--date", "2026-11-20")
    assert "Vibe rate limit: 15 report creations in the last hour" in message
    assert not [c for c in vibe.calls if c[1] == "/create_async_report"]  # never sent


def test_rate_limit_holds_across_concurrent_workers(settings, django_db_blocker):
    """Six workers (own connections) race for slots with a limit of 4: exactly 4 get one."""
    settings.P360_VIBE_CREATES_PER_HOUR = 4
    settings.P360_VIBE_RATE_WAIT_MAX = 0
    key_hash = fingerprint(f"race-{time.time()}")
    outcomes: list[str] = []

    def worker() -> None:
        try:
            acquire_creation_slot(key_hash=key_hash)
            outcomes.append("slot")
        except VibeError:
            outcomes.append("refused")
        finally:
            connections.close_all()

    with django_db_blocker.unblock():
        threads = [threading.Thread(target=worker) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        cleanup = threading.Thread(
            target=lambda: (VibeReportRequest.objects.filter(key_hash=key_hash).delete(), connections.close_all())
        )
        cleanup.start()
        cleanup.join()
    assert sorted(outcomes) == ["refused"] * 2 + ["slot"] * 4
    assert connection.schema_name == "public"


def test_the_services_own_hourly_limit_gives_a_clear_failure(vibe, acme, settings):
    """Vibe's own limit (here 2 per hour) answers 429 with an hour-long Retry-After: fail, don't sleep."""
    settings.P360_VIBE_RATE_WAIT_MAX = 5
    vibe.creates_per_hour = 2
    try:
        assert ingest("vibe", "--org", "acme", "--date", "2026-11-19")["status"] == "succeeded"
        assert ingest("vibe", "--org", "acme", "--date", "2026-11-20")["status"] == "succeeded"
        started = time.monotonic()
        message, result = ingest_failing("vibe", "--org", "acme", "--date", "2026-11-21")
    finally:
        vibe.creates_per_hour = 15
    assert time.monotonic() - started < 5
    # The stand-in counts down from the oldest creation of its hour: on a loaded machine a few seconds have passed.
    waited = re.search(r"Vibe rate limit: Vibe asked to retry POST create_async_report after (\d+) s", message)
    assert waited and 3500 <= int(waited.group(1)) <= 3600, message
    assert result["status"] == "failed"
    assert [c[2] for c in vibe.calls if c[1] == "/create_async_report"] == [200, 200, 429]
