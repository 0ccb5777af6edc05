"""Orchestration commands as an operator runs them (subprocess for exit codes, in-process for data);
the data migration's function run on real rows."""

from __future__ import annotations

import importlib
import io
import json
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError
from django_tenants.utils import schema_context

from campaigns.models import Campaign, LineItem, Program
from tests.cli import run_manage
from tests.orchestration.helpers import tree

pytestmark = pytest.mark.django_db


def run(*args: str) -> dict[str, Any]:
    out = io.StringIO()
    call_command(*args, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_create_program_line_item_set_budget_and_status(acme):
    program = run(
        "create_program",
        "--org",
        "acme",
        "Q1 IO",
        "--budget",
        "5000",
        "--start",
        "2027-01-01",
        "--end",
        "2027-03-31",
        "--salesforce-opportunity-id",
        "006XYZ",
    )
    ids = tree(acme, program_budget="2000.00", campaign_budget="1000.00", items=("400.00",))
    li = run(
        "create_line_item",
        "--org",
        "acme",
        "--campaign",
        str(ids["campaign"]),
        "Video",
        "--budget",
        "600.00",
        "--pricing-model",
        "cpcv",
        "--pacing",
        "asap",
        "--bid",
        "15.00",
    )
    assert li["status"] == "draft"
    with pytest.raises(CommandError, match="budget_exceeded"):
        run("create_line_item", "--org", "acme", "--campaign", str(ids["campaign"]), "More", "--budget", "0.01")
    with pytest.raises(CommandError, match="budget_exceeded"):
        run("set_budget", "--org", "acme", "--campaign", str(ids["campaign"]), "999.99")
    with pytest.raises(CommandError, match="budget_exceeded"):
        run("set_budget", "--org", "acme", "--program", str(ids["program"]), "999.99")
    assert run("set_budget", "--org", "acme", "--line-item", str(li["id"]), "500")["budget"] == "500.00"
    assert (
        run("campaign_status", "--org", "acme", "--line-item", str(li["id"]), "submit")["status"] == "pending_approval"
    )
    assert run("campaign_status", "--org", "acme", "--line-item", str(li["id"]), "approve")["status"] == "active"
    with pytest.raises(CommandError, match="invalid_transition"):
        run("campaign_status", "--org", "acme", "--line-item", str(li["id"]), "approve")
    with schema_context(acme.schema_name):
        assert Program.objects.get(pk=program["id"]).salesforce_opportunity_id == "006XYZ"
        assert LineItem.objects.get(pk=li["id"]).budget == Decimal("500.00")
    # another org's ids read as unknown
    with pytest.raises(CommandError, match="unknown campaign"):
        run("campaign_status", "--org", "globex", "--campaign", str(ids["campaign"] + 1000), "pause")


@pytest.mark.slow  # one manage.py subprocess: about 5 s on a busy machine
def test_command_errors_are_one_line(acme):
    ids = tree(acme)
    with pytest.raises(CommandError, match=r"^invalid: budget 'abc' is not a number$"):
        run("set_budget", "--org", "acme", "--program", str(ids["program"]), "abc")
    # one subprocess (Django start-up is slow on a busy machine); the parsers of the others in-process
    assert run_manage("set_budget", "--help").returncode == 0
    from django.core.management import load_command_class

    for name in ("create_program", "create_line_item", "campaign_status", "pacing", "revert_action", "ttd_sync"):
        assert load_command_class("campaigns", name).create_parser("manage.py", name).format_help()


def test_pacing_command_prints_the_tree(acme):
    ids = tree(acme)
    body = run("pacing", "--org", "acme", "--program", str(ids["program"]), "--as-of", "2026-11-10")
    assert body["pacing"]["program"]["budget"] == "1000.00"
    assert [li["budget"] for li in body["pacing"]["campaigns"][0]["line_items"]] == ["200.00", "300.00"]


def test_the_data_migration_moves_every_existing_campaign_under_a_default_program(acme):
    migration = importlib.import_module("campaigns.migrations.0005_default_program")
    with schema_context(acme.schema_name):
        Campaign.objects.create(name="Old one", budget="250.00", start_date="2026-01-01", end_date="2026-02-01")
        Campaign.objects.create(name="Old two", budget="100.50", source="surfside")
        before = {c.pk: (c.name, c.budget, c.status, c.start_date, c.source) for c in Campaign.objects.all()}
        assert Campaign.objects.filter(program__isnull=True).count() == len(before)
        migration.assign_default_program(apps, None)
        migration.assign_default_program(apps, None)  # again: nothing more
        [default] = Program.objects.filter(is_default=True)
        assert default.budget == sum((b for _, b, *_ in before.values()), Decimal(0))
        assert str(default.start_date) == "2026-01-01" and str(default.end_date) == "2026-02-01"
        after = {c.pk: (c.name, c.budget, c.status, c.start_date, c.source) for c in Campaign.objects.all()}
        assert after == before and not Campaign.objects.filter(program__isnull=True).exists()
        migration.unassign(apps, None)
        assert Campaign.objects.filter(program__isnull=True).count() == len(before)
        assert not Program.objects.exists()
