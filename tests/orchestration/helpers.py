"""Helpers for orchestration tests: API calls under an org, building a tree through the services."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context

from campaigns.models import Campaign, CampaignStatus, LineItem, Program
from campaigns.services import campaign_save, line_item_save, program_save


def api(client: Client, org: Any, method: str, path: str, body: Any = None, **params: Any) -> Any:
    url = f"/o/{org.slug}/api/v1/{path}"
    if method == "get":
        return client.get(url, params)
    return getattr(client, method)(url, body or {}, content_type="application/json")


def tree(
    org: Any,
    *,
    program_budget: str = "1000.00",
    campaign_budget: str = "600.00",
    items: tuple[str, ...] = ("200.00", "300.00"),
    start: dt.date = dt.date(2026, 11, 1),
    end: dt.date = dt.date(2026, 11, 30),
    status: str = CampaignStatus.ACTIVE,
) -> dict[str, Any]:
    """A program with one campaign and line items (ids returned), built through the services."""
    with schema_context(org.schema_name):
        program = program_save(
            program=Program(name=f"P{Program.objects.count()}", budget=program_budget, start_date=start, end_date=end),
            actor=None,
        )
        campaign = campaign_save(
            campaign=Campaign(
                program=program, name=f"C{Campaign.objects.count()}", budget=campaign_budget, status=status
            ),
            actor=None,
        )
        lis = [
            line_item_save(
                line_item=LineItem(campaign=campaign, name=f"L{i}", external_id=f"li{i}", budget=budget, status=status),
                actor=None,
            )
            for i, budget in enumerate(items)
        ]
    connection.set_schema_to_public()
    return {"program": program.pk, "campaign": campaign.pk, "line_items": [li.pk for li in lis]}


def sums_hold(org: Any) -> bool:
    """No parent's children sum above it."""
    with schema_context(org.schema_name):
        for p in Program.objects.all():
            if sum((c.budget for c in p.campaigns.all()), Decimal(0)) > p.budget:
                return False
        for c in Campaign.objects.all():
            if sum((li.budget for li in c.line_items.all()), Decimal(0)) > c.budget:
                return False
    return True
