"""`demo` adds four weeks of metrics from every source, once."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django_tenants.utils import schema_context

from campaigns.models import DailyMetric
from tenants.models import Organization

pytestmark = pytest.mark.django_db


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
    assert sources == {"surfside", "vibe", "facebook", "reds"} and days == 28
