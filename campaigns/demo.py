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


# Programs (IOs) with line items, over the campaigns the metrics demo loaded (issue 14): line items named after
# their campaign's strategies, so the demo's spend rolls up to them and the pacing charts have data.
PROGRAMS = {
    "acme": ("Acme FY26 H2 IO", "006ACMEH2DEMO"),
    "globex": ("Globex holiday IO", "006GLOBEXDEMO"),
}
SPLIT = (("Prospecting", Decimal("0.55"), "even"), ("Retargeting", Decimal("0.40"), "asap"))


def load_demo_orchestration(orgs: list[Any], created: dict[str, int]) -> dict[str, int]:
    """Per demo org: one program holding the campaigns with spend and no program yet, each split into line items
    (even and ASAP pacing), then one pacing check so the dashboard has alerts. Skipped when the program exists."""
    from django.db.models import Max, Min, Sum
    from django.utils import timezone

    from campaigns.automation import check_pacing
    from campaigns.models import DailyMetric, LineItem, Pacing, Program
    from campaigns.services import line_item_save, program_save

    made: dict[str, int] = {}
    for org in orgs:
        spec = PROGRAMS.get(org.slug)  # type: ignore[attr-defined]
        if spec is None:
            continue
        name, opportunity = spec
        with schema_context(org.schema_name):
            if Program.objects.filter(name=name).exists():
                continue
            spending = Campaign.objects.filter(
                program__isnull=True, pk__in=DailyMetric.objects.values("campaign_id"), budget__gt=0
            ).order_by("name", "source")
            if not spending.exists():
                continue
            span = spending.aggregate(start=Min("start_date"), end=Max("end_date"), budget=Sum("budget"))
            program = program_save(
                program=Program(
                    name=name,
                    budget=(span["budget"] * Decimal("1.10")).quantize(Decimal("1")),
                    start_date=span["start"],
                    end_date=span["end"],
                    salesforce_opportunity_id=opportunity,
                    currency=spending.first().currency,  # type: ignore[union-attr]
                ),
                actor=None,
            )
            items = 0
            for campaign in spending:
                campaign.program = program
                campaign_save(campaign=campaign, actor=None)
                for strategy, share, pacing in SPLIT:
                    if campaign.strategies.filter(name=strategy).exists():
                        line_item_save(
                            line_item=LineItem(
                                campaign=campaign,
                                name=strategy,
                                budget=(campaign.budget * share).quantize(Decimal("0.01")),
                                bid=Decimal("2.50"),
                                pacing=Pacing.ASAP if pacing == "asap" else Pacing.EVEN,
                                status=CampaignStatus.ACTIVE,
                            ),
                            actor=None,
                        )
                        items += 1
            check_pacing(as_of=timezone.localdate())
            made[org.slug] = items  # type: ignore[attr-defined]
    return made
