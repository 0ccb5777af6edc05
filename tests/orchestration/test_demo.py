"""The demo's programs: the campaigns with spend (as the metrics demo leaves them) go under a program with line
items named after their strategies, so the admin pages and pacing charts have data. Idempotent."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns.demo import PROGRAMS, load_demo_orchestration
from campaigns.models import Campaign, LineItem, Program
from campaigns.pacing import program_pacing
from campaigns.services import campaign_save
from tests.ingestion.helpers import SURFSIDE_HEADER, ingest, set_cpm, write_csv

pytestmark = pytest.mark.django_db


def test_demo_programs_have_line_items_with_spend_and_load_once(acme: Any, manager: Any, login: Any, tmp_path: Any):
    set_cpm(acme, "10")
    today = timezone.localdate()
    rows = [
        [(today - dt.timedelta(days=n)).isoformat(), "Demo brand", strategy, "P", "C", 1000 + n, 5, 1, "0"]
        for n in range(1, 15)
        for strategy in ("Prospecting", "Retargeting")
    ]
    ingest("surfside", str(write_csv(tmp_path / "demo.csv", SURFSIDE_HEADER, rows)), "--org", "acme")
    with schema_context(acme.schema_name):
        campaign = Campaign.objects.get(name="Demo brand")
        campaign.start_date, campaign.end_date = today - dt.timedelta(days=14), today + dt.timedelta(days=30)
        campaign.budget = "5000.00"
        campaign.status = "active"
        campaign_save(campaign=campaign, actor=None)
    made = load_demo_orchestration([acme], {})
    assert made == {"acme": 2}
    name = PROGRAMS["acme"][0]
    with schema_context(acme.schema_name):
        program = Program.objects.get(name=name)
        assert program.salesforce_opportunity_id and Campaign.objects.get(name="Demo brand").program == program
        body = program_pacing(program, today)
        [row] = [c for c in body["campaigns"] if c["name"] == "Demo brand"]
        assert {li["name"] for li in row["line_items"]} == {"Prospecting", "Retargeting"}
        assert all(li["spent"] != "0.00" for li in row["line_items"])
        count = LineItem.objects.count()
    assert load_demo_orchestration([acme], {}) == {}  # again: nothing new
    with schema_context(acme.schema_name):
        assert LineItem.objects.count() == count
    page = login(manager).get(f"/o/acme/admin/campaigns/campaign/{campaign.pk}/change/")
    assert page.status_code == 200 and b"Prospecting" in page.content
