"""Campaign triggers: the send outbox filled by the evaluator, and its delivery.

Exactly one Send row per (campaign, membership transition): it is written in the evaluator's
transaction (a unique constraint makes a second write a no-op). Delivery takes one due row at a
time with `select_for_update(skip_locked=True)` and keeps the lock while it talks to the provider,
so a second worker never sends the same row, and a worker that dies mid-send leaves the row
pending (its transaction is rolled back) for the next worker. The provider request carries an
idempotency key derived from the row (`Idempotency-Key` for SMS and push, the Message-ID for email)
so a provider that saw the first attempt can drop the repeat; that is the only way a send can be
"exactly once" across a crash between the provider's accept and our commit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from django.conf import settings
from django.core.mail import EmailMessage
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from p360.core.faults import fault_point
from segments.models import Segment, SegmentSettings, Send, Transition, TriggerCampaign, UserProfile

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")


def org_settings() -> SegmentSettings:
    row = SegmentSettings.objects.first()
    return row if row is not None else SegmentSettings()


def in_quiet_hours(moment: datetime, conf: SegmentSettings) -> datetime | None:
    """The end of the quiet period `moment` falls in (org time zone), or None when it is not quiet."""
    if conf.quiet_start is None or conf.quiet_end is None or conf.quiet_start == conf.quiet_end:
        return None
    zone = ZoneInfo(conf.time_zone or "UTC")
    local = moment.astimezone(zone)
    start, end = conf.quiet_start, conf.quiet_end
    now_t = local.time()
    quiet = (start <= now_t < end) if start < end else (now_t >= start or now_t < end)
    if not quiet:
        return None
    end_day = local.date() if now_t < end else local.date() + timedelta(days=1)
    return datetime.combine(end_day, end, tzinfo=zone)


def render(template: str, profile: UserProfile | None, user_id: str) -> str:
    """Fill {{ name }} from the profile: user_id, email, phone, then attributes (a missing value is "")."""
    values: dict[str, Any] = {"user_id": user_id}
    if profile is not None:
        values.update(profile.attributes or {})
        values.update({"email": profile.email, "phone": profile.phone, "user_id": profile.user_id})
    return _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), "")), template)


def enqueue_sends(transitions: Sequence[Transition], *, now: datetime) -> int:
    """Outbox rows for the campaigns listening to these transitions (inside the evaluator's transaction)."""
    if not transitions:
        return 0
    segment_ids = {t.segment_id for t in transitions}
    campaigns = list(
        TriggerCampaign.objects.filter(status=TriggerCampaign.Status.ACTIVE, segment_id__in=segment_ids).select_related(
            "segment"
        )
    )
    if not campaigns:
        return 0
    batch_seconds = int(getattr(settings, "SEGMENTS_DERIVED_BATCH_SECONDS", 60))
    rows = []
    for campaign in campaigns:
        wall = timezone.now()  # `now` may be a replayed evaluation time; sends follow the wall clock
        not_before = max(wall, campaign.scheduled_at or wall)
        if campaign.segment.kind == Segment.Kind.DERIVED and batch_seconds > 0:
            # Derived segments change for many users at once: gather their sends into one batch.
            epoch = int(not_before.timestamp())
            not_before = datetime.fromtimestamp(epoch - epoch % batch_seconds + batch_seconds, tz=not_before.tzinfo)
        for t in transitions:
            if t.segment_id == campaign.segment_id and t.kind == campaign.on:
                rows.append(
                    Send(
                        campaign=campaign,
                        transition=t,
                        user_id=t.user_id,
                        channel=campaign.channel,
                        not_before=not_before,
                        created_at=now,
                    )
                )
    Send.objects.bulk_create(rows, ignore_conflicts=True, batch_size=5000)
    return len(rows)


# --- Channels ------------------------------------------------------------------------------------


class SendError(RuntimeError):
    pass


def idempotency_key(send: Send) -> str:
    return f"p360-{connection.schema_name}-send-{send.pk}"  # type: ignore[attr-defined]


def send_email(send: Send, profile: UserProfile | None, body: str, subject: str) -> str:
    if profile is None or not profile.email:
        raise SendError("the user has no email address")
    message_id = f"<{idempotency_key(send)}@p360.local>"
    EmailMessage(
        subject=subject or "A message for you",
        body=body,
        to=[profile.email],
        headers={"Message-ID": message_id},
    ).send()
    return message_id


def send_sms(send: Send, profile: UserProfile | None, body: str, client: httpx.Client) -> str:
    """Twilio's Messages API: form-encoded POST, HTTP basic auth with the account SID and token."""
    if profile is None or not profile.phone:
        raise SendError("the user has no phone number")
    sid = settings.SEGMENTS_TWILIO_ACCOUNT_SID
    response = client.post(
        f"{settings.SEGMENTS_TWILIO_BASE_URL}/2010-04-01/Accounts/{sid}/Messages.json",
        data={"To": profile.phone, "From": settings.SEGMENTS_TWILIO_FROM, "Body": body},
        auth=(sid, settings.SEGMENTS_TWILIO_AUTH_TOKEN),
        headers={"Idempotency-Key": idempotency_key(send)},
    )
    if response.status_code >= 400:
        raise SendError(f"Twilio answered {response.status_code}: {response.text[:200]}")
    return str(response.json().get("sid", ""))


def send_push(send: Send, profile: UserProfile | None, body: str, subject: str, client: httpx.Client) -> str:
    """FCM HTTP v1: one POST per device token to projects/<id>/messages:send with an OAuth bearer token."""
    tokens = [t for t in (profile.device_tokens if profile else []) or [] if isinstance(t, str) and t]
    if not tokens:
        raise SendError("the user has no device token")
    names = []
    for token in tokens[:10]:
        response = client.post(
            f"{settings.SEGMENTS_FCM_BASE_URL}/v1/projects/{settings.SEGMENTS_FCM_PROJECT_ID}/messages:send",
            json={"message": {"token": token, "notification": {"title": subject or "", "body": body}}},
            headers={
                "Authorization": f"Bearer {settings.SEGMENTS_FCM_ACCESS_TOKEN}",
                "Idempotency-Key": f"{idempotency_key(send)}-{token[-12:]}",
            },
        )
        if response.status_code >= 400:
            raise SendError(f"FCM answered {response.status_code}: {response.text[:200]}")
        names.append(str(response.json().get("name", "")))
    return ",".join(names)[:200]


# --- Delivery ------------------------------------------------------------------------------------


def _capped(send: Send, now: datetime) -> bool:
    campaign = send.campaign
    since = now - timedelta(hours=campaign.frequency_hours)
    sent = Send.objects.filter(
        campaign=campaign, user_id=send.user_id, status=Send.Status.SENT, sent_at__gte=since
    ).count()
    return sent >= campaign.frequency_cap


def deliver_due(*, now: datetime | None = None, limit: int = 500) -> dict[str, int]:
    """Deliver due outbox rows one by one (lock held while sending); returns counts by outcome."""
    counts = {"sent": 0, "failed": 0, "skipped": 0, "deferred": 0}
    conf = org_settings()
    with httpx.Client(timeout=10) as client:
        for _ in range(limit):
            when = now or timezone.now()
            with transaction.atomic():
                send = (
                    Send.objects.select_for_update(skip_locked=True, of=("self",))
                    .select_related("campaign")
                    .filter(status=Send.Status.PENDING, not_before__lte=when)
                    .filter(Q(campaign__status=TriggerCampaign.Status.ACTIVE))
                    .order_by("not_before", "id")
                    .first()
                )
                if send is None:
                    break
                outcome = _deliver_one(send, when, conf, client)
                counts[outcome] += 1
    return counts


def _deliver_one(send: Send, now: datetime, conf: SegmentSettings, client: httpx.Client) -> str:
    campaign = send.campaign
    if campaign.respect_quiet_hours and (resume := in_quiet_hours(now, conf)) is not None:
        send.not_before = resume
        send.detail = "deferred: quiet hours"
        send.save(update_fields=["not_before", "detail"])
        return "deferred"
    if _capped(send, now):
        send.status = Send.Status.SKIPPED
        send.detail = f"frequency cap: {campaign.frequency_cap} per {campaign.frequency_hours} h"
        send.save(update_fields=["status", "detail"])
        return "skipped"
    profile = UserProfile.objects.filter(user_id=send.user_id).first()
    body = render(campaign.template, profile, send.user_id)
    subject = render(campaign.subject, profile, send.user_id)
    send.attempts += 1
    try:
        if send.channel == TriggerCampaign.Channel.EMAIL:
            provider_id = send_email(send, profile, body, subject)
        elif send.channel == TriggerCampaign.Channel.SMS:
            provider_id = send_sms(send, profile, body, client)
        else:
            provider_id = send_push(send, profile, body, subject, client)
    except (SendError, httpx.HTTPError, OSError) as exc:
        send.detail = str(exc)[:500]
        if (isinstance(exc, SendError) and "has no" in str(exc)) or send.attempts >= MAX_ATTEMPTS:
            send.status = Send.Status.FAILED
        else:
            send.not_before = now + timedelta(seconds=30 * 2**send.attempts)
        send.save(update_fields=["status", "detail", "attempts", "not_before"])
        return "failed" if send.status == Send.Status.FAILED else "deferred"
    fault_point("segments.send.after_provider")  # tests: die after the provider accepted, before our commit
    send.status = Send.Status.SENT
    send.sent_at = now
    send.provider_id = provider_id[:200]
    send.detail = ""
    send.save(update_fields=["status", "sent_at", "provider_id", "detail", "attempts"])
    return "sent"
