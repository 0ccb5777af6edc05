"""A send worker killed with SIGKILL after the provider accepted, before its commit: the row stays pending,
the next worker re-sends it with the same Idempotency-Key, and the provider delivers exactly one SMS."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from tests.cli import run_manage
from tests.segments.helpers import drop_committed_org
from tests.segments.providers import providers, twilio_env

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
SLUG = "sendkill"


@pytest.fixture(scope="module")
def kill_org(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Any]:
    """Committed org, segment, campaign, profile and one pending send (subprocesses must see them)."""
    from segments.models import TriggerCampaign
    from segments.services import campaign_save, ingest_events, profile_put, segment_create
    from tenants.services import org_create

    with django_db_blocker.unblock():
        org = org_create(slug=SLUG, name="Send kill org", ttd_advertiser_id="sendkilladv")
        with schema_context(org.schema_name):
            segment = segment_create(
                data={
                    "name": "buyers",
                    "type": "independent",
                    "rule": {
                        "event_type": "orders",
                        "attribute": "count",
                        "operator": "gt",
                        "value": 0,
                        "window_minutes": 60,
                    },
                },
                actor=None,
            )
            campaign_save(
                campaign=TriggerCampaign(name="sms", segment=segment, channel="sms", template="hi"), actor=None
            )
            profile_put(user_id="u1", data={"phone": "+14155550100"}, actor=None)
            from django.utils import timezone

            ingest_events(
                raws=[
                    {"event_id": "k1", "user_id": "u1", "event_type": "orders", "timestamp": timezone.now().isoformat()}
                ]
            )
        connection.set_schema_to_public()
        yield org
        drop_committed_org(org)


def _deliver(url: str, fault: str = "") -> Any:
    env = {
        "P360_DB_NAME": connection.settings_dict["NAME"],
        **twilio_env(url),
        "P360_FAULT": fault,
    }
    return run_manage("segments_deliver", "--once", "--org", SLUG, env=env)


def _statuses(org: Any) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT status FROM "{org.schema_name}".segments_send ORDER BY id')
        return [row[0] for row in cursor.fetchall()]


def test_sigkill_mid_send_then_rerun_sends_exactly_one(kill_org):
    with providers() as state:
        killed = _deliver(state.url, fault="segments.send.after_provider")
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        assert len(state.sms) == 1 and _statuses(kill_org) == ["pending"]
        rerun = _deliver(state.url)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert "sent 1" in rerun.stdout
        assert len(state.sms) == 1  # the repeat carried the same Idempotency-Key and was dropped
        assert _statuses(kill_org) == ["sent"]
        assert _deliver(state.url).returncode == 0 and len(state.sms) == 1
