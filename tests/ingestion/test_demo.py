"""`demo` adds 91 days of metrics (ending today) from every source, once, and gives its campaigns flights and budgets."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns.models import Campaign, DailyMetric
from tenants.models import Organization

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_demo_loads_metrics_from_every_source_idempotently():
    first, second = io.StringIO(), io.StringIO()
    call_command("demo", "--json", stdout=first)
    call_command("demo", "--json", stdout=second)
    loaded = json.loads(first.getvalue())["metrics"]
    assert {key.split(":")[1] for key in loaded} == {"surfside", "vibe", "facebook", "reds"}
    assert json.loads(second.getvalue())["metrics"] == {}
    acme = Organization.objects.get(slug="acme")
    with schema_context(acme.schema_name):
        sources = set(DailyMetric.objects.values_list("source", flat=True))
        days = DailyMetric.objects.filter(source="surfside").values("date").distinct().count()
        last_day = DailyMetric.objects.latest("date").date
        bare = Campaign.objects.filter(Q(start_date__isnull=True) | Q(end_date__isnull=True) | Q(budget=0))
        bare_names = list(bare.exclude(source="manual").values_list("name", flat=True))
    assert sources == {"surfside", "vibe", "facebook", "reds"} and days == 91
    assert last_day == timezone.now().date()
    assert bare_names == []  # every demo campaign has a flight and a budget (an always-on one has no end)


def test_demo_default_report_compares_every_card_with_the_previous_period(login, acme_marketer):
    call_command("demo", stdout=io.StringIO())
    page = login(acme_marketer).get("/o/acme/reports/").content.decode()
    assert "vs previous" in page or "previous" in page
    assert "no previous figure to compare" not in page
