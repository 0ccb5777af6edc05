"""Move every existing campaign under one default program per organisation (nothing else changes).

The default program's budget is the sum of its campaigns' budgets (so the budget guard holds from
the start), its flight spans theirs, and its currency is the organisation's (client settings).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import migrations
from django.db.models import Max, Min, Sum

DEFAULT_NAME = "Default program"


def assign_default_program(apps: Any, schema_editor: Any) -> None:
    Campaign = apps.get_model("campaigns", "Campaign")
    Program = apps.get_model("campaigns", "Program")
    ClientSettings = apps.get_model("campaigns", "ClientSettings")
    orphans = Campaign.objects.filter(program__isnull=True)
    if not orphans.exists():
        return
    figures = orphans.aggregate(budget=Sum("budget"), start=Min("start_date"), end=Max("end_date"))
    settings_row = ClientSettings.objects.order_by("pk").first()
    currency = settings_row.currency if settings_row is not None else "USD"
    program, _ = Program.objects.get_or_create(
        name=DEFAULT_NAME,
        defaults={
            "budget": figures["budget"] or Decimal("0"),
            "currency": currency,
            "start_date": figures["start"],
            "end_date": figures["end"],
            "is_default": True,
        },
    )
    orphans.update(program=program)


def unassign(apps: Any, schema_editor: Any) -> None:
    Campaign = apps.get_model("campaigns", "Campaign")
    Program = apps.get_model("campaigns", "Program")
    Campaign.objects.filter(program__is_default=True).update(program=None)
    Program.objects.filter(is_default=True).delete()


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0004_orchestration")]

    operations = [migrations.RunPython(assign_default_program, unassign)]
