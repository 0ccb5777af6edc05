"""Writes for campaigns (the orchestration issue adds programs, line items and budgets)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction

from campaigns.models import Campaign
from p360.audit.services import delete_with_audit, record
from p360.jobs.dispatch import org_task
from tenants.selectors import current_org

if TYPE_CHECKING:
    from tenants.models import User


def _snapshot(campaign: Campaign) -> dict[str, Any]:
    return {
        "name": campaign.name,
        "status": campaign.status,
        "start_date": campaign.start_date,
        "end_date": campaign.end_date,
        "budget": str(campaign.budget),
        "currency": campaign.currency,
    }


@org_task
@transaction.atomic
def campaign_save(*, campaign: Campaign, actor: User | None) -> Campaign:
    """Create or update a campaign in the current org's schema, with an audit row."""
    created = campaign.pk is None
    before = None if created else _snapshot(Campaign.objects.get(pk=campaign.pk))
    campaign.full_clean(exclude=["audiences"])
    campaign.save()
    record(
        action="campaign.created" if created else "campaign.updated",
        actor=actor,
        org=current_org(),
        entity=campaign,
        before=before,
        after=_snapshot(campaign),
    )
    return campaign


@org_task
@transaction.atomic
def campaign_delete(*, campaign: Campaign, actor: User | None) -> None:
    delete_with_audit(campaign, actor=actor, org=current_org(), before=_snapshot(campaign))
