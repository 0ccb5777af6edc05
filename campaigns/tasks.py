"""Scheduled orchestration checks (django-q2): hourly, one task per active organisation."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from p360.core.jobs.dispatch import enqueue_for_org, org_task


def check_all_orgs() -> int:
    from tenants.models import Organization

    count = 0
    for org in Organization.objects.active():
        enqueue_for_org(org, "campaigns.tasks.check_org", task_name=f"{org.slug}:pacing")
        count += 1
    return count


@org_task
def check_org(day: str | None = None) -> dict[str, Any]:
    """Pacing alerts and pauses at budget, then every active campaign's performance rules (harmless twice:
    alerts are unique per object, day and status; only active line items are paused)."""
    from campaigns.automation import apply_rules, check_pacing
    from campaigns.models import Campaign, CampaignStatus

    as_of = dt.date.fromisoformat(day) if day else timezone.localdate()
    result = check_pacing(as_of=as_of)
    paused = 0
    for campaign in Campaign.objects.filter(status=CampaignStatus.ACTIVE, rules__active=True).distinct():
        paused += len(apply_rules(campaign=campaign, as_of=as_of, actor=None))
    return {**result, "rule_pauses": paused}
