"""Two send workers started at once over the same outbox: `SKIP LOCKED` hands each pending row to one of them,
so every transition is posted to the provider exactly once (no repeat even with the same Idempotency-Key) and
every row ends `sent`. The provider holds each request a little so the two workers really overlap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from tests.cli import ROOT
from tests.segments.helpers import drop_committed_org
from tests.segments.providers import providers, twilio_env

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
SLUG = "sendrace"
USERS = 40


@pytest.fixture(scope="module")
def race_org(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Any]:
    """Committed org, SMS campaign, profiles and USERS pending sends (the worker processes must see them)."""
    from segments.models import TriggerCampaign
    from segments.services import campaign_save, ingest_events, profile_put, segment_create
    from tenants.services import org_create

    rule = {"event_type": "orders", "attribute": "count", "operator": "gt", "value": 0, "window_minutes": 60}
    with django_db_blocker.unblock():
        org = org_create(slug=SLUG, name="Send race org", ttd_advertiser_id="sendraceadv")
        with schema_context(org.schema_name):
            segment = segment_create(data={"name": "buyers", "type": "independent", "rule": rule}, actor=None)
            campaign_save(
                campaign=TriggerCampaign(name="sms", segment=segment, channel="sms", template="hi {{user_id}}"),
                actor=None,
            )
            now = timezone.now().isoformat()
            for i in range(USERS):
                profile_put(user_id=f"u{i}", data={"phone": f"+1415555{i:04d}"}, actor=None)
            ingest_events(
                raws=[
                    {"event_id": f"r{i}", "user_id": f"u{i}", "event_type": "orders", "timestamp": now}
                    for i in range(USERS)
                ]
            )
        connection.set_schema_to_public()
        yield org
        drop_committed_org(org)


def _worker(url: str) -> subprocess.Popen[str]:
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "P360_DB_NAME": connection.settings_dict["NAME"],
        **twilio_env(url),
    }
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "segments_deliver", "--once", "--json", "--org", SLUG],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def _statuses(org: Any) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT status FROM "{org.schema_name}".segments_send ORDER BY id')
        return [row[0] for row in cursor.fetchall()]


def test_two_workers_racing_send_each_transition_once(race_org: Any) -> None:
    assert _statuses(race_org) == ["pending"] * USERS
    with providers() as state:
        state.delay = 0.05  # 40 sends take >= 2 s in one worker: the second one starts well inside that
        workers = [_worker(state.url) for _ in range(2)]
        outputs = [w.communicate(timeout=120) for w in workers]
        for worker, (_out, err) in zip(workers, outputs, strict=True):
            assert worker.returncode == 0, err[-2000:]
        assert len(state.posts) == USERS and set(state.posts.values()) == {1}  # no row was posted twice
        assert len(state.sms) == USERS and sorted(m["To"] for m in state.sms) == [
            f"+1415555{i:04d}" for i in range(USERS)
        ]
        sent = [json.loads(out)["orgs"][SLUG]["sent"] for out, _ in outputs]
        assert sum(sent) == USERS and min(sent) > 0, outputs  # both workers took a share
    assert _statuses(race_org) == ["sent"] * USERS
