"""Trigger campaigns: email/SMS/push on entry or exit through local wire-format stand-ins, templates,
frequency caps, quiet hours, schedules, pause, and exactly one send per transition across a crash."""

from __future__ import annotations

from datetime import time as dtime
from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone
from django_tenants.utils import schema_context

from tests.segments.helpers import ago, api, create_segment, event, independent, iso, post_events, schema_of
from tests.segments.providers import FCM_TOKEN, TWILIO_SID, TWILIO_TOKEN, providers

pytestmark = pytest.mark.django_db


@pytest.fixture
def stand_ins(settings):
    with providers() as state:
        settings.SEGMENTS_TWILIO_BASE_URL = state.url
        settings.SEGMENTS_TWILIO_ACCOUNT_SID = TWILIO_SID
        settings.SEGMENTS_TWILIO_AUTH_TOKEN = TWILIO_TOKEN
        settings.SEGMENTS_TWILIO_FROM = "+15005550006"
        settings.SEGMENTS_FCM_BASE_URL = state.url
        settings.SEGMENTS_FCM_PROJECT_ID = "p360-test"
        settings.SEGMENTS_FCM_ACCESS_TOKEN = FCM_TOKEN
        yield state


@pytest.fixture
def client(acme, acme_marketer, login):
    return login(acme_marketer)


def _profile(client, user, **data):
    assert client.put(f"{api()}/users/{user}/profile", data, content_type="application/json").status_code == 200


def _campaign(client, segment_id, **data):
    body = {
        "name": data.pop("name", "welcome"),
        "segment": segment_id,
        "channel": "email",
        "template": "Hi {{ first_name }}, you are in!",
        "subject": "Hello {{ first_name }}",
        **data,
    }
    response = client.post(f"{api()}/trigger-campaigns", body, content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()


def deliver():
    call_command("segments_deliver", "--once", "--org", "acme")


def test_email_sms_and_push_on_entry_filled_from_attributes(client, stand_ins):
    seg = create_segment(client, independent("buyers", value=0)).json()["id"]
    _profile(
        client,
        "u1",
        email="ann@example.com",
        phone="+14155550100",
        device_tokens=["dev-token-1"],
        attributes={"first_name": "Ann"},
    )
    email = _campaign(client, seg)
    _campaign(client, seg, name="sms", channel="sms", template="{{ first_name }}: 10% off")
    _campaign(client, seg, name="push", channel="push", template="Back soon, {{ first_name }}?")
    post_events(client, [event("u1")])
    deliver()
    assert [m.body for m in mail.outbox] == ["Hi Ann, you are in!"] and mail.outbox[0].to == ["ann@example.com"]
    assert mail.outbox[0].subject == "Hello Ann"
    assert stand_ins.sms == [{"To": "+14155550100", "From": "+15005550006", "Body": "Ann: 10% off"}]
    assert stand_ins.push == [
        {"token": "dev-token-1", "notification": {"title": "Hello Ann", "body": "Back soon, Ann?"}}
    ]
    deliver()  # nothing due twice
    assert len(mail.outbox) == 1 and len(stand_ins.sms) == 1
    detail = client.get(f"{api()}/trigger-campaigns/{email['id']}").json()
    assert detail["analytics"] == [{"channel": "email", "total": 1, "sent": 1, "failed": 0, "skipped": 0, "pending": 0}]
    assert detail["sends"][0]["status"] == "sent"


def test_exit_campaign_and_frequency_cap(client, stand_ins):
    seg = create_segment(client, independent("recent", value=0, window=5)).json()["id"]
    _profile(client, "u1", email="u1@example.com", attributes={"first_name": "Bo"})
    enter = _campaign(client, seg, frequency_cap=1, frequency_hours=24)
    _campaign(client, seg, name="bye", on="exit", template="Bye {{ first_name }}")
    post_events(client, [event("u1", when=ago(minutes=4))])
    deliver()
    call_command("segments_timers", "--once", "--org", "acme", "--at", iso(timezone.now() + timedelta(minutes=2)))
    post_events(client, [event("u1")])  # enters again: over the cap of 1 per 24 h
    deliver()
    assert sorted(m.body for m in mail.outbox) == ["Bye Bo", "Hi Bo, you are in!"]
    statuses = [s["status"] for s in client.get(f"{api()}/trigger-campaigns/{enter['id']}").json()["sends"]]
    assert statuses == ["skipped", "sent"]


def test_quiet_hours_in_the_org_time_zone_defer_and_schedule_and_pause(client, stand_ins):
    from segments.models import SegmentSettings

    seg = create_segment(client, independent("buyers", value=0)).json()["id"]
    _profile(client, "u1", email="u1@example.com")
    _profile(client, "u2", email="u2@example.com")
    with schema_context(schema_of("acme")):
        SegmentSettings.objects.create(time_zone="Pacific/Kiritimati", quiet_start=dtime(0, 0), quiet_end=dtime(23, 59))
    campaign = _campaign(client, seg)
    post_events(client, [event("u1")])
    deliver()
    assert mail.outbox == []
    sends = client.get(f"{api()}/trigger-campaigns/{campaign['id']}").json()["sends"]
    assert sends[0]["status"] == "pending" and "quiet hours" in sends[0]["detail"]
    # paused: new transitions do not queue sends; scheduled in the future: not sent yet
    client.patch(f"{api()}/trigger-campaigns/{campaign['id']}", {"status": "PAUSED"}, content_type="application/json")
    post_events(client, [event("u2")])
    assert len(client.get(f"{api()}/trigger-campaigns/{campaign['id']}").json()["sends"]) == 1
    later = _campaign(
        client, seg, name="later", respect_quiet_hours=False, scheduledAt=iso(timezone.now() + timedelta(hours=1))
    )
    post_events(client, [event("u1", "orders"), event("u3", "orders")])
    deliver()
    assert mail.outbox == []
    assert client.get(f"{api()}/trigger-campaigns/{later['id']}").json()["analytics"][0]["pending"] == 1


def test_exactly_one_send_when_the_worker_dies_after_the_provider_accepted(client, stand_ins, monkeypatch):
    import segments.triggers as triggers

    seg = create_segment(client, independent("buyers", value=0)).json()["id"]
    _profile(client, "u1", phone="+14155550100")
    campaign = _campaign(client, seg, channel="sms", template="hello")

    def die(point: str) -> None:
        if point == "segments.send.after_provider":
            raise SystemExit("worker died")  # the transaction holding the row lock rolls back

    monkeypatch.setattr(triggers, "fault_point", die)
    post_events(client, [event("u1")])
    with pytest.raises(SystemExit):
        deliver()
    assert len(stand_ins.sms) == 1
    monkeypatch.undo()
    deliver()  # the row is still pending; the retry carries the same Idempotency-Key
    assert len(stand_ins.sms) == 1
    detail = client.get(f"{api()}/trigger-campaigns/{campaign['id']}").json()
    assert [s["status"] for s in detail["sends"]] == ["sent"]


def test_provider_errors_retry_then_succeed_and_missing_contact_fails(client, stand_ins):
    seg = create_segment(client, independent("buyers", value=0)).json()["id"]
    _profile(client, "u1", phone="+14155550100")
    campaign = _campaign(client, seg, channel="sms", template="hello")
    stand_ins.fail_next = 1
    post_events(client, [event("u1"), event("nophone")])
    deliver()
    sends = {s["user_id"]: s for s in client.get(f"{api()}/trigger-campaigns/{campaign['id']}").json()["sends"]}
    assert sends["nophone"]["status"] == "failed" and "no phone" in sends["nophone"]["detail"]
    assert sends["u1"]["status"] == "pending" and "503" in sends["u1"]["detail"]
    from segments.models import Send

    with schema_context(schema_of("acme")):
        Send.objects.filter(status="pending").update(not_before=timezone.now())
    deliver()
    assert len(stand_ins.sms) == 1
