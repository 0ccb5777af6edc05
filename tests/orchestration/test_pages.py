"""Marketer pages: programs read-only with pacing and Salesforce links; drafts created and submitted."""

from __future__ import annotations

import html
import re

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


def test_programs_page_shows_money_and_pacing_as_words(acme, acme_marketer, login):
    """Session 12 UX review: the page showed `1258400.00`, `on_track` and `active` (API codes and raw decimals)."""
    tree(acme, program_budget="1250000.00", campaign_budget="600000.00", items=("200000.00", "300000.00"))
    body = login(acme_marketer).get(f"/o/{acme.slug}/programs/").content.decode()
    assert "$1,250,000.00" in body and "$600,000.00" in body and "1250000.00" not in body
    assert ">Active<" in body and ">active<" not in body
    labels = {"On track", "Under-pacing", "Over-pacing"}
    assert any(f">{label}</span>" in body for label in labels)
    assert "on_track<" not in body and ">under<" not in body and ">over<" not in body


def _rejected(client, url, typed):
    """Post a proposal that is refused: a 303 to the programs page (POST, redirect, GET), then that page."""
    response = client.post(url, typed)
    assert response.status_code == 303, response.status_code
    location = response["Location"]
    assert location.startswith(url.replace("drafts/", "") + "?draft=") and location.endswith("#draft-error")
    page = client.get(location)
    assert page.status_code == 200
    return location, page.content.decode()


def test_a_rejected_proposal_keeps_what_was_typed_and_marks_the_field(acme, acme_marketer, login):
    ids = tree(acme)
    client = login(acme_marketer)
    url = f"/o/{acme.slug}/programs/drafts/"
    typed = {"program": ids["program"], "name": "Too big", "budget": "400.01", "start": "2026-11-02", "end": ""}
    _, body = _rejected(client, url, typed)
    assert 'role="alert" id="draft-error" data-error-code="budget_exceeded"' in body
    # the guard's figures as money, as the page shows budgets (the service said "400.00 USD left of 1,000.00")
    assert "has left: $400.00 of its $1,000.00 remain, and $400.01 was asked." in html.unescape(body)
    assert 'value="Too big"' in body and 'value="2026-11-02"' in body
    budget = re.search(r'<input id="draft-budget"[^>]*>', body)
    assert budget and 'value="400.01"' in budget.group(0) and 'aria-invalid="true"' in budget.group(0)
    assert f'<option value="{ids["program"]}" selected>' in body
    _, bad = _rejected(client, url, {**typed, "budget": "abc"})
    assert "not a number" in bad and 'value="abc"' in bad
    with schema_context(acme.schema_name):
        assert not Campaign.objects.filter(name="Too big").exists()


def test_a_reload_after_a_rejected_proposal_shows_it_again_without_sending_it(acme, acme_marketer, login):
    """Session 13: the rejected proposal was the POST's own answer, so a reload sent it again (and would have
    saved it had the program's budget grown meanwhile); /drafts/ itself answered 405 to a GET."""
    ids = tree(acme)
    client = login(acme_marketer)
    url = f"/o/{acme.slug}/programs/drafts/"
    typed = {"program": ids["program"], "name": "Reloaded", "budget": "400.01", "start": "", "end": ""}
    location, _ = _rejected(client, url, typed)
    again = client.get(location)  # the reload: a GET of the page, the same form and error
    assert again.status_code == 200 and again.content.decode().count('id="draft-error"') == 1
    assert 'value="Reloaded"' in again.content.decode() and 'value="400.01"' in again.content.decode()
    plain = client.get(f"/o/{acme.slug}/programs/").content.decode()  # the page itself: a clean form
    assert 'id="draft-error"' not in plain and 'value="Reloaded"' not in plain
    assert client.get(url).status_code == 302 and client.get(url)["Location"] == f"/o/{acme.slug}/programs/"
    client.post(url, {**typed, "budget": "400.00"})  # a saved proposal forgets the rejected one
    assert 'id="draft-error"' not in client.get(location).content.decode()
    with schema_context(acme.schema_name):
        assert Campaign.objects.filter(name="Reloaded").count() == 1


def test_a_draft_is_not_called_under_pacing(acme, acme_marketer, login):
    ids = tree(acme)
    client = login(acme_marketer)
    client.post(f"/o/{acme.slug}/programs/drafts/", {"program": ids["program"], "name": "Idea", "budget": "100.00"})
    body = client.get(f"/o/{acme.slug}/programs/").content.decode()
    row = re.search(r"<tr><th scope=\"row\">Idea</th>.*?</tr>", body, re.S)
    assert row and "Not live yet" in row.group(0)
    assert not any(label in row.group(0) for label in ("Under-pacing", "Over-pacing", "On track")), row.group(0)


def test_one_org_users_get_a_link_not_a_one_entry_menu(acme, acme_marketer, manager, login):
    marketer = login(acme_marketer)
    for url in ("/profile/", f"/o/{acme.slug}/programs/"):
        body = marketer.get(url).content.decode()
        assert f'class="org-home-link" href="/o/{acme.slug}/"' in body and "org-switcher" not in body, url
        assert "choose…" not in body and "/static/p360/menus.js" in body


def test_a_rejected_proposal_stays_in_the_org_it_was_typed_in(acme, globex, super_admin, login):
    """A user of several orgs has one session: the proposal rejected in acme never shows on globex's page."""
    ids = tree(acme)
    tree(globex)  # globex's page has a proposal form too
    client = login(super_admin)
    typed = {"program": ids["program"], "name": "Acme only", "budget": "400.01", "start": "", "end": ""}
    location, body = _rejected(client, f"/o/{acme.slug}/programs/drafts/", typed)
    assert 'value="Acme only"' in body
    elsewhere = client.get(location.replace(f"/o/{acme.slug}/", f"/o/{globex.slug}/"))
    assert elsewhere.status_code == 200
    assert 'id="draft-error"' not in elsewhere.content.decode() and "Acme only" not in elsewhere.content.decode()
