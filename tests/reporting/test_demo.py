"""`demo` stores the demo weeks' and months' summaries once, and the rollup matches the daily rows."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django_tenants.utils import schema_context

from campaigns.models import DailyMetric
from reporting.demo import load_demo_summaries
from reporting.models import DailyRollup, Summary
from tenants.models import Organization

pytestmark = pytest.mark.django_db


def test_demo_summaries_and_rollup():
    call_command("demo", stdout=io.StringIO())
    acme = Organization.objects.get(slug="acme")
    with schema_context(acme.schema_name):
        weeks = Summary.objects.filter(period="week").count()
        months = Summary.objects.filter(period="month").count()
        facts = DailyMetric.objects.aggregate(i=Sum("impressions"), s=Sum("spend"), c=Sum("conversions"))
        rolled = DailyRollup.objects.aggregate(i=Sum("impressions"), s=Sum("spend"), c=Sum("conversions"))
    assert weeks >= 4 and months >= 1
    assert facts == rolled
    assert load_demo_summaries([acme]) == 0  # idempotent
