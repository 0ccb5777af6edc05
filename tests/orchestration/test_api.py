"""Programs > campaigns > line items through the org API: create, nest, budget guard, workflow, isolation."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from campaigns.models import Campaign, LineItem, Program
from p360.core.audit.models import AuditEvent
from tests.orchestration.helpers import api, sums_hold

pytestmark = pytest.mark.django_db


def _create_tree(client, org):
    program = api(
        client,
        org,
        "post",
        "programs",
        {
            "name": "Q4 IO",
            "budget": "100000.00",
            "start": "2026-10-01",
            "end": "2026-12-31",
            "salesforce_opportunity_id": "006ABC",
        },
    )
    assert program.status_code == 201, program.json()
    pid = program.json()["id"]
    campaign = api(
        client,
        org,
        "post",
        "campaigns",
        {"program": pid, "name": "Brand", "budget": "40000.00", "start": "2026-10-01", "end": "2026-11-30"},
    )
    assert campaign.status_code == 201, campaign.json()
    cid = campaign.json()["id"]
    li = api(
        client,
        org,
        "post",
        "line-items",
        {
            "campaign": cid,
            "name": "Display",
            "budget": "15000.00",
            "bid": "2.50",
            "pricing_model": "cpm",
            "pacing": "even",
        },
    )
    assert li.status_code == 201, li.json()
    return pid, cid, li.json()["id"]


def test_create_and_read_the_nested_tree(acme, manager, login):
    client = login(manager)
    pid, cid, lid = _create_tree(client, acme)
    body = api(client, acme, "get", f"programs/{pid}").json()
    assert body["budget"] == "100000.00" and body["start"] == "2026-10-01"
    assert body["salesforce_url"].endswith("/lightning/r/Opportunity/006ABC/view")
    [campaign] = body["campaigns"]
    assert campaign["id"] == cid and campaign["budget"] == "40000.00" and campaign["status"] == "draft"
    [li] = campaign["line_items"]
    assert li == {**li, "id": lid, "budget": "15000.00", "bid": "2.5000", "pricing_model": "cpm", "pacing": "even"}
    assert (
        AuditEvent.objects.filter(action__in=["program.created", "campaign.created", "line_item.created"]).count() == 3
    )


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("campaigns", {"name": "Too big", "budget": "60000.01"}),
        ("line-items", {"name": "Too big", "budget": "25000.01"}),
    ],
)
def test_children_above_the_parent_are_refused_with_budget_exceeded(acme, manager, login, path, body):
    client = login(manager)
    pid, cid, _ = _create_tree(client, acme)
    parent = {"program": pid} if path == "campaigns" else {"campaign": cid}
    with schema_context(acme.schema_name):
        before = (Campaign.objects.count(), LineItem.objects.count(), AuditEvent.objects.count())
    response = api(client, acme, "post", path, {**parent, **body})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "budget_exceeded" and error["details"]["currency"] == "USD"
    with schema_context(acme.schema_name):
        assert (Campaign.objects.count(), LineItem.objects.count(), AuditEvent.objects.count()) == before
    # exactly the remainder fits
    fits = {"campaigns": "60000.00", "line-items": "25000.00"}[path]
    assert api(client, acme, "post", path, {**parent, **body, "name": "Fits", "budget": fits}).status_code == 201
    assert sums_hold(acme)


def test_lowering_a_parent_below_its_children_is_refused(acme, manager, login):
    client = login(manager)
    pid, cid, lid = _create_tree(client, acme)
    r = api(client, acme, "patch", f"programs/{pid}", {"budget": "39999.99"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "budget_exceeded"
    r = api(client, acme, "patch", f"campaigns/{cid}/tree", {"budget": "14999.99"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "budget_exceeded"
    r = api(client, acme, "patch", f"line-items/{lid}", {"budget": "40000.01"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "budget_exceeded"
    with schema_context(acme.schema_name):
        assert Program.objects.get(pk=pid).budget == 100000
        assert LineItem.objects.get(pk=lid).budget == 15000
    assert api(client, acme, "patch", f"line-items/{lid}", {"budget": "40000.00"}).status_code == 200


def test_flights_sit_inside_the_parent(acme, manager, login):
    client = login(manager)
    pid, cid, _ = _create_tree(client, acme)
    r = api(
        client,
        acme,
        "post",
        "campaigns",
        {"program": pid, "name": "Late", "budget": "1.00", "start": "2026-12-01", "end": "2027-01-05"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "flight_outside_parent"
    r = api(
        client,
        acme,
        "post",
        "line-items",
        {"campaign": cid, "name": "Dec", "budget": "1.00", "start": "2026-12-01", "end": "2026-12-02"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "flight_outside_parent"
    r = api(client, acme, "patch", f"programs/{pid}", {"end": "2026-11-15"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "flight_outside_parent"


@pytest.mark.parametrize("budget", ["abc", "-1", "1.001", "NaN", "1e400"])
def test_bad_money_is_a_400(acme, manager, login, budget):
    response = api(login(manager), acme, "post", "programs", {"name": "X", "budget": budget})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"


def test_workflow_marketer_drafts_and_submits_manager_approves(acme, manager, acme_marketer, login):
    pid, _cid, lid = _create_tree(login(manager), acme)
    marketer = login(acme_marketer)
    r = api(marketer, acme, "post", "programs", {"name": "Mine", "budget": "1.00"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
    draft = api(marketer, acme, "post", "campaigns", {"program": pid, "name": "Marketer idea", "budget": "100.00"})
    assert draft.status_code == 201 and draft.json()["status"] == "draft"
    did = draft.json()["id"]
    assert api(marketer, acme, "post", f"campaigns/{did}/approve").status_code == 403
    assert api(marketer, acme, "post", f"campaigns/{did}/submit").json()["status"] == "pending_approval"
    # once submitted, the marketer can no longer edit it
    assert api(marketer, acme, "patch", f"campaigns/{did}/tree", {"budget": "5.00"}).status_code == 403
    boss = login(manager)
    assert api(boss, acme, "post", f"campaigns/{did}/approve").json()["status"] == "active"
    assert api(boss, acme, "post", f"campaigns/{did}/pause").json()["status"] == "paused"
    r = api(boss, acme, "post", f"campaigns/{did}/submit")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_transition"
    assert api(boss, acme, "post", f"campaigns/{did}/resume").json()["status"] == "active"
    assert api(boss, acme, "post", f"campaigns/{did}/complete").json()["status"] == "completed"
    assert api(boss, acme, "post", f"line-items/{lid}/launch").json()["status"] == "active"
    actions = list(
        AuditEvent.objects.filter(entity_id=str(did), action__startswith="campaign.").values_list("action", flat=True)
    )
    assert {"campaign.submit", "campaign.approve", "campaign.pause", "campaign.resume", "campaign.complete"} <= set(
        actions
    )


def test_other_org_cannot_reach_programs(acme, globex, manager, globex_marketer, login):
    pid, cid, _lid = _create_tree(login(manager), acme)
    other = login(globex_marketer)
    assert api(other, acme, "get", f"programs/{pid}").status_code == 404
    assert api(other, acme, "post", "line-items", {"campaign": cid, "name": "x", "budget": "1"}).status_code == 404
    # in its own org, the same ids are unknown (or other rows): never acme's
    r = api(other, globex, "get", f"programs/{pid}")
    assert r.status_code == 404
    r = api(other, globex, "post", "line-items", {"campaign": 999999, "name": "x", "budget": "1"})
    assert r.status_code == 400 and "campaign" in r.json()["error"]["details"]["fields"]


def test_pacing_api_errors_and_isolation(acme, globex, manager, globex_marketer, login):
    pid, _, _ = _create_tree(login(manager), acme)
    r = api(login(manager), acme, "get", "pacing")
    assert r.status_code == 400 and "program" in r.json()["error"]["details"]["fields"]
    assert api(login(manager), acme, "get", "pacing", program=999999).status_code == 404
    other = login(globex_marketer)
    assert api(other, acme, "get", "pacing", program=pid).status_code == 404
    assert api(other, globex, "get", "pacing", program=pid).status_code == 404


def test_salesforce_account_link_of_the_org(acme, manager, login):
    from tenants.models import Organization

    Organization.objects.filter(pk=acme.pk).update(salesforce_account_id="001ACME")
    pid, _, _ = _create_tree(login(manager), acme)
    body = api(login(manager), acme, "get", f"programs/{pid}").json()
    assert body["salesforce_account_url"].endswith("/lightning/r/Account/001ACME/view")
