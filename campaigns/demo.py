"""Demo campaigns of each demo organisation (registered demo loader)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django_tenants.utils import schema_context

from campaigns.models import Campaign, CampaignStatus
from campaigns.services import campaign_save

CAMPAIGNS = {
    "acme": [
        ("Acme Q4 awareness", CampaignStatus.ACTIVE, dt.date(2026, 10, 1), dt.date(2026, 12, 31), Decimal("125000.00")),
        ("Acme retargeting always-on", CampaignStatus.ACTIVE, dt.date(2026, 1, 1), None, Decimal("40000.00")),
        ("Acme spring launch", CampaignStatus.ENDED, dt.date(2026, 3, 1), dt.date(2026, 5, 31), Decimal("80000.00")),
    ],
    "globex": [
        ("Globex holiday push", CampaignStatus.DRAFT, dt.date(2026, 12, 1), dt.date(2026, 12, 24), Decimal("60000.00")),
    ],
}


def load_demo_campaigns(orgs: list[Any], created: dict[str, int]) -> None:
    """Each org's demo campaigns (skipped when they exist)."""
    for org in orgs:
        with schema_context(org.schema_name):
            for name, status, start, end, budget in CAMPAIGNS.get(org.slug, []):  # type: ignore[attr-defined]
                if not Campaign.objects.filter(name=name).exists():
                    campaign_save(
                        campaign=Campaign(name=name, status=status, start_date=start, end_date=end, budget=budget),
                        actor=None,
                    )
                    created["campaigns"] += 1
