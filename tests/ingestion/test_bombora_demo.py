"""`demo` loads one week of Bombora data through the real loader, once; the demo CRM's domains are covered."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from bombora import selectors, store
from bombora.models import BomboraWeek
from ingestion.bombora_demo import TOPICS
from ingestion.models import IngestionRun
from tenants.models import Organization

pytestmark = pytest.mark.django_db


def test_demo_loads_a_bombora_week_once_and_covers_the_demo_audience():
    first, second = io.StringIO(), io.StringIO()
    call_command("demo", "--json", stdout=first)
    call_command("demo", "--json", stdout=second)
    loaded, again = json.loads(first.getvalue())["bombora"], json.loads(second.getvalue())["bombora"]
    assert loaded["created"] and loaded["status"] == "succeeded" and loaded["rows"] > 3000
    assert again == {"week": loaded["week"], "created": False}
    week = BomboraWeek.objects.get()
    assert store.current_week() == week.week and week.topics == len(TOPICS) and 0 < week.surging_rows < week.rows
    assert IngestionRun.objects.get(source="bombora").trigger == "demo"
    (acme,) = selectors.coverage(Organization.objects.filter(slug="acme"))
    assert acme.domains >= 500 and 0.75 < acme.covered / acme.domains < 0.9 and acme.surging > 0
