"""Marketer pages: programs read-only with pacing and Salesforce links; drafts created and submitted."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from campaigns.models import Campaign, Program
from tests.orchestration.helpers import tree

pytestmark = pytest.mark.django_db


def test_marketer_sees_programs_creates_a_draft_and_submits_it(acme, acme_marketer, login):
    ids = tree(acme)
    with schema_context(acme.schema_name):
        Program.objects.filter(pk=ids["program"]).update(salesforce_opportunity_id="006M")
    client = login(acme_marketer)
    page = client.get(f"/o/{acme.slug}/programs/")
    body = page.content.decode()
    assert page.status_code == 200 and "P0" in body and "/lightning/r/Opportunity/006M/view" in body and "L1" in body
    over = client.post(
        f"/o/{acme.slug}/programs/drafts/", {"program": ids["program"], "name": "Idea", "budget": "400.01"}, follow=True
    )
    assert "budget_exceeded" in over.content.decode()
    client.post(f"/o/{acme.slug}/programs/drafts/", {"program": ids["program"], "name": "Idea", "budget": "400.00"})
    with schema_context(acme.schema_name):
        draft = Campaign.objects.get(name="Idea")
        assert draft.status == "draft"
    client.post(f"/o/{acme.slug}/programs/drafts/{draft.pk}/submit/")
    with schema_context(acme.schema_name):
        assert Campaign.objects.get(pk=draft.pk).status == "pending_approval"


def test_other_org_marketer_gets_404(acme, globex_marketer, login):
    tree(acme)
    assert login(globex_marketer).get(f"/o/{acme.slug}/programs/").status_code == 404
