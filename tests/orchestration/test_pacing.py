"""Pacing from real spend (loaded through the Surfside ETL and the REDS loader), reconciled with the
metrics API; performance rules, reversal, reallocation; alerts by e-mail and pause at budget."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django_tenants.utils import schema_context

from campaigns.automation import apply_rules, check_pacing, suggest_reallocation
from campaigns.models import (
    AutomationAction,
    Campaign,
    CampaignStatus,
    ClientSettings,
    LineItem,
    PacingAlert,
    PerformanceRule,
    Program,
    RuleMetric,
)
from campaigns.services import campaign_save, line_item_save, program_save, transition
from p360.core.audit.models import AuditEvent
from tests.ingestion.helpers import SURFSIDE_HEADER, api_metrics, ingest, set_cpm, write_csv
from tests.orchestration.helpers import api

pytestmark = pytest.mark.django_db
AS_OF = dt.date(2026, 11, 10)
# line item: (budget, impressions per day, conversions per day) -> CPM 10: spend = impressions / 100 per day
PLAN = {"Display": ("300.00", 1000, 1), "Video": ("200.00", 300, 0), "Native": ("50.00", 500, 1)}


@pytest.fixture
def program(acme: Any, tmp_path: Any) -> dict[str, Any]:
    set_cpm(acme, "10")
    with schema_context(acme.schema_name):
        p = program_save(
            program=Program(
                name="Q4", budget="1000.00", start_date=dt.date(2026, 11, 1), end_date=dt.date(2026, 11, 30)
            ),
            actor=None,
        )
        c = campaign_save(
            campaign=Campaign(program=p, name="Brand", source="surfside", budget="600.00", status="active"),
            actor=None,
        )
        items = {
            name: line_item_save(
                line_item=LineItem(campaign=c, name=name, budget=budget, status="active"), actor=None
            ).pk
            for name, (budget, _, _) in PLAN.items()
        }
    rows = []
    for day in range(1, 13):  # days after as_of exist too: pacing must not count them
        for name, (_, impressions, conversions) in PLAN.items():
            rows.append([f"2026-11-{day:02d}", "Brand", name, "P", "C", impressions, 0, conversions, "0"])
    ingest("surfside", str(write_csv(tmp_path / "m.csv", SURFSIDE_HEADER, rows)), "--org", "acme")
    return {"program": p.pk, "campaign": c.pk, "items": items}


def _pacing(client: Any, org: Any, program_id: int) -> dict[str, Any]:
    response = api(client, org, "get", "pacing", program=program_id, as_of=AS_OF.isoformat())
    assert response.status_code == 200, response.content
    return response.json()


def test_pacing_expected_actual_projected_and_status(acme, manager, login, program):
    body = _pacing(login(manager), acme, program["program"])
    [campaign] = body["campaigns"]
    items = {li["name"]: li for li in campaign["line_items"]}
    # 10 of 30 days elapsed: even pacing expects a third of the budget
    assert items["Display"] == {
        **items["Display"],
        "budget": "300.00",
        "spent": "100.00",
        "expected_to_date": "100.00",
        "projected": "300.00",
        "status": "on_track",
    }
    assert (items["Video"]["spent"], items["Video"]["expected_to_date"], items["Video"]["status"]) == (
        "30.00",
        "66.67",
        "under",
    )
    assert (items["Native"]["spent"], items["Native"]["projected"], items["Native"]["status"]) == (
        "50.00",
        "150.00",
        "over",
    )
    assert (campaign["spent"], campaign["expected_to_date"], campaign["status"]) == ("180.00", "200.00", "on_track")
    assert (body["program"]["spent"], body["program"]["status"]) == ("180.00", "under")


def test_every_money_figure_reconciles_with_the_metrics_api(acme, manager, login, program):
    client = login(manager)
    pacing = _pacing(client, acme, program["program"])
    span = {"start": "2026-11-01", "end": AS_OF.isoformat()}
    by_strategy = {
        r["strategy"]: r["spend"] for r in api_metrics(client, acme, **span, group_by="strategy").json()["rows"]
    }
    [campaign] = pacing["campaigns"]
    for li in campaign["line_items"]:
        assert li["spent"] == by_strategy[li["name"]]
    by_campaign = api_metrics(client, acme, **span, group_by="campaign").json()["rows"]
    assert campaign["spent"] == next(r["spend"] for r in by_campaign if r["campaign_id"] == campaign["id"])
    by_program = api_metrics(client, acme, **span, group_by="program").json()["rows"]
    assert by_program == [{**by_program[0], "program_id": program["program"], "program": "Q4", "spend": "180.00"}]
    assert pacing["program"]["spent"] == by_program[0]["spend"]


def test_rule_pause_is_audited_and_resume_restores_the_previous_state(acme, manager, login, program):
    with schema_context(acme.schema_name):
        campaign = Campaign.objects.get(pk=program["campaign"])
        PerformanceRule.objects.create(campaign=campaign, metric=RuleMetric.CPA, target="8", min_spend="20.00")
        before = {li.name: (li.status, li.budget) for li in campaign.line_items.all()}
        actions = apply_rules(campaign=campaign, as_of=AS_OF, actor=None)
        # Display: CPA 10 > 8; Video: no conversion after 30 spent; Native: CPA 5
        assert sorted(a.reason.split(":")[0] for a in actions) == ["Display", "Video"]
        assert {li.name: li.status for li in campaign.line_items.all()} == {
            "Display": "paused",
            "Video": "paused",
            "Native": "active",
        }
        assert apply_rules(campaign=campaign, as_of=AS_OF, actor=None) == []  # twice: nothing more
        assert AuditEvent.objects.filter(action="automation.rule_pause").count() >= 2
    client = login(manager)
    for name in ("Display", "Video"):
        r = api(client, acme, "post", f"line-items/{program['items'][name]}/resume")
        assert r.status_code == 200 and r.json()["status"] == "active"
    with schema_context(acme.schema_name):
        assert {li.name: (li.status, li.budget) for li in campaign.line_items.all()} == before
        assert not AutomationAction.objects.filter(reverted_at__isnull=True).exists()
        assert AuditEvent.objects.filter(action="automation.rule_pause.reverted").count() == 2


def test_suggested_reallocation_is_reviewed_then_applied_in_one_step_and_reversible(acme, manager, login, program):
    client = login(manager)
    cid = program["campaign"]
    with schema_context(acme.schema_name):
        [move] = suggest_reallocation(Campaign.objects.get(pk=cid), AS_OF)
    assert (move.source.name, move.target.name, move.amount) == ("Display", "Native", Decimal("100.00"))
    r = api(client, acme, "post", f"campaigns/{cid}/reallocation", {"moves": [move.as_json()]})
    assert r.status_code == 200, r.json()
    with schema_context(acme.schema_name):
        budgets = dict(LineItem.objects.filter(campaign_id=cid).values_list("name", "budget"))
        assert budgets == {"Display": Decimal("200.00"), "Video": Decimal("200.00"), "Native": Decimal("150.00")}
    # a source never drops below what it spent
    r = api(
        client,
        acme,
        "post",
        f"campaigns/{cid}/reallocation",
        {"moves": [{"from": program["items"]["Video"], "to": program["items"]["Native"], "amount": "170.01"}]},
    )
    assert r.status_code == 400
    call_command("revert_action", "--org", "acme", str(r_id(acme)))
    with schema_context(acme.schema_name):
        budgets = dict(LineItem.objects.filter(campaign_id=cid).values_list("name", "budget"))
        assert budgets == {"Display": Decimal("300.00"), "Video": Decimal("200.00"), "Native": Decimal("50.00")}


def r_id(org: Any) -> int:
    with schema_context(org.schema_name):
        return AutomationAction.objects.get(kind="reallocation").pk


def test_reverting_after_a_manual_change_is_refused(acme, program):
    with schema_context(acme.schema_name):
        campaign = Campaign.objects.get(pk=program["campaign"])
        PerformanceRule.objects.create(campaign=campaign, metric=RuleMetric.CTR, target="0.5", min_spend="0")
        actions = apply_rules(campaign=campaign, as_of=AS_OF, actor=None)
        assert len(actions) == 3  # no clicks at all: CTR 0 everywhere
        li = LineItem.objects.get(pk=program["items"]["Video"])
        transition(obj=li, action="complete", actor=None)
    video = next(a for a in actions if a.reason.startswith("Video"))
    out = call_command_failing("revert_action", "--org", "acme", str(video.pk))
    assert "changed since" in out


def call_command_failing(*args: str) -> str:
    from django.core.management.base import CommandError

    try:
        call_command(*args)
    except CommandError as exc:
        return str(exc)
    raise AssertionError("command succeeded")


def test_alerts_by_email_and_pause_at_budget(acme, program, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    with schema_context(acme.schema_name):
        row = ClientSettings.objects.first() or ClientSettings.objects.create()
        row.alert_emails = "ops@acme.test"
        row.save()
        LineItem.objects.filter(pk=program["items"]["Native"]).update(auto_pause_at_budget=True)
        result = check_pacing(as_of=dt.date(2026, 11, 12))  # Native: 60 spent of 50
        assert result["paused"] == 1 and result["alerts"] >= 1
        assert LineItem.objects.get(pk=program["items"]["Native"]).status == CampaignStatus.PAUSED
        assert PacingAlert.objects.filter(line_item_id=program["items"]["Native"], status="over").exists()
        again = check_pacing(as_of=dt.date(2026, 11, 12))
        assert again["alerts"] == 0 and again["paused"] == 0  # twice: nothing doubled
    assert len(mail.outbox) == 1 and "Native" in mail.outbox[0].body and mail.outbox[0].to == ["ops@acme.test"]
    # Read by people: money and dates as the pages show them, the pace in words (it read "over pace (spent 60.00 of
    # 50.00, ..., by 2026-11-12)").
    with schema_context(acme.schema_name):
        native = PacingAlert.objects.get(line_item_id=program["items"]["Native"], status="over").message
    assert ": Line item over-pacing (spent $60.00 of $50.00, expected $" in native and native.endswith(
        "by 12 Nov 2026)"
    )
    assert native in mail.outbox[0].body


def test_reds_line_items_roll_up_by_external_id_with_media_cost(acme, manager, login, tmp_path):
    set_cpm(acme, "10")
    with schema_context(acme.schema_name):
        p = program_save(program=Program(name="REDS IO", budget="100.00"), actor=None)
        c = campaign_save(
            campaign=Campaign(program=p, name="TTD camp", external_id="cmpA", budget="100.00"), actor=None
        )
        li = line_item_save(
            line_item=LineItem(campaign=c, name="Prospecting", external_id="li1", budget="50.00"), actor=None
        )
    header = "event_timestamp|advertiser_id|campaign_id|line_item_id|event_type|cost_usd|audience_id|user_id|user_id_type|conversion_value"
    lines = [f"2026-11-05T01:{i % 60:02d}:00Z|acme01|cmpA|li1|impression|0.002|a|u{i}|UID2|" for i in range(250)]
    lines += [f"2026-11-05T02:{i % 60:02d}:00Z|acme01|cmpA|li9|impression|0.001|a|v{i}|UID2|" for i in range(100)]
    path = tmp_path / "reds.csv"
    path.write_text("\n".join([header, *lines]) + "\n")
    ingest("reds", str(path))
    body = _pacing(login(manager), acme, p.pk)
    [campaign] = body["campaigns"]
    [item] = campaign["line_items"]
    assert item["id"] == li.pk
    assert (item["spent"], item["media_cost"]) == ("2.50", "0.50")  # 250 impressions at CPM 10; 250 x 0.002
    assert campaign["spent"] == "3.50"  # the unlinked line item li9 still counts for the campaign


def test_hourly_pacing_check_is_scheduled():
    """Registered from campaigns/registrations.py (no project-level schedule list any more)."""
    from django_q.models import Schedule

    from p360.core.jobs.schedules import ensure_schedules

    ensure_schedules()
    schedule = Schedule.objects.get(name="p360: pacing checks")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        "campaigns.tasks.check_all_orgs",
        Schedule.MINUTES,
        60,
    )
