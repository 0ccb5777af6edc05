"""Writes for campaigns and client settings (the orchestration issue adds programs, line items and budgets)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.db import transaction

from campaigns.models import Campaign, ClientSettings, CpmRate
from campaigns.selectors import client_settings
from p360.core import registry
from p360.core.audit.services import delete_with_audit, record
from p360.core.crypto import encrypt
from p360.core.jobs.dispatch import org_task
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
    """Delete a campaign (its strategies and daily metrics go with it: ORM cascade) and, through the
    "campaign_deleted" hook, what other apps derived from it (reporting's rollup), in the same transaction."""
    campaign_id = campaign.pk
    delete_with_audit(campaign, actor=actor, org=current_org(), before=_snapshot(campaign))
    registry.call_hooks("campaign_deleted", campaign_id=campaign_id)


# --- Client settings: CPM rates by effective date, currency, source settings -----------------------


class CampaignServiceError(ValueError):
    """Bad input to a campaign service (shown to the user as is)."""


@org_task
@transaction.atomic
def cpm_set(
    *, cpm: Decimal | str, effective_date: dt.date, currency: str = "USD", actor: User | None, note: str = ""
) -> CpmRate:
    """The org's CPM from `effective_date` on. History is kept: a new date adds a rate; the same date
    replaces that day's rate (audited with the old value). Metrics already loaded keep their spend
    until their source and date are re-run."""
    try:
        value = Decimal(str(cpm))
    except (InvalidOperation, ValueError) as exc:
        raise CampaignServiceError(f"CPM {cpm!r} is not a number") from exc
    if not value.is_finite() or value <= 0:
        raise CampaignServiceError("CPM must be a positive number")
    if value != value.quantize(Decimal("0.0001")):
        raise CampaignServiceError("CPM has at most 4 decimal places")
    if value >= Decimal("1000000"):
        raise CampaignServiceError("CPM must be below 1,000,000")
    value = value.quantize(Decimal("0.0001"))  # CPM: 4 decimals (A.1)
    currency = (currency or "USD").strip().upper()
    if len(currency) != 3 or not currency.isalpha():
        raise CampaignServiceError(f"currency {currency!r} is not a 3-letter ISO code")
    existing = CpmRate.objects.filter(effective_date=effective_date).first()
    before = None if existing is None else {"cpm": str(existing.cpm), "currency": existing.currency}
    rate = existing or CpmRate(effective_date=effective_date)
    rate.cpm, rate.currency, rate.note = value, currency, note
    rate.created_by_email = getattr(actor, "email", "") or "cli"
    rate.save()
    settings_row = client_settings()
    if settings_row.currency != currency:
        settings_row.currency = currency
        settings_row.save(update_fields=["currency", "updated_at"])
    record(
        action="cpm.set",
        actor=actor,
        org=current_org(),
        entity=rate,
        before=before,
        after={"cpm": str(value), "currency": currency, "effective_date": effective_date},
    )
    return rate


@org_task
@transaction.atomic
def client_settings_save(
    *, settings_row: ClientSettings, actor: User | None, vibe_api_key: str | None = None
) -> ClientSettings:
    """Save the org's settings; a new Vibe API key is stored encrypted (never logged or audited)."""

    if vibe_api_key:
        settings_row.vibe_api_key_encrypted = encrypt(vibe_api_key.strip())
    settings_row.full_clean()
    settings_row.save()
    record(
        action="client_settings.saved",
        actor=actor,
        org=current_org(),
        entity=settings_row,
        after={
            "currency": settings_row.currency,
            "alert_emails": settings_row.alert_emails,
            "surfside_enabled": settings_row.surfside_enabled,
            "surfside_prefix": settings_row.surfside_prefix,
            "vibe_enabled": settings_row.vibe_enabled,
            "vibe_advertiser_id": settings_row.vibe_advertiser_id,
            "vibe_api_key_changed": bool(vibe_api_key),
        },
    )
    return settings_row
