"""set_cpm: history by effective date, validation, audit; the rate in force on a date."""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django_tenants.utils import schema_context

from campaigns.models import CpmRate
from campaigns.selectors import client_settings, cpm_in_force
from p360.core.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def run(*args: str) -> dict:
    out = io.StringIO()
    call_command("set_cpm", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_set_cpm_keeps_history_and_the_rate_in_force_is_used(acme):
    first = run("--org", "acme", "12.5", "--effective-date", "2026-01-01")
    assert first == {
        "org": "acme",
        "cpm": "12.5000",
        "currency": "USD",
        "effective_date": "2026-01-01",
        "id": first["id"],
    }
    assert run("--org", "acme", "12.5", "--effective-date", "2026-01-01")["id"] == first["id"]  # same day: replaced
    run("--org", "acme", "15", "--effective-date", "2026-06-01", "--currency", "eur")
    with schema_context(acme.schema_name):
        assert CpmRate.objects.count() == 2
        assert cpm_in_force(dt.date(2026, 5, 31)).cpm == Decimal("12.5")
        assert cpm_in_force(dt.date(2026, 6, 1)).cpm == Decimal("15")
        assert cpm_in_force(dt.date(2025, 12, 31)) is None
        assert client_settings().currency == "EUR"
    assert AuditEvent.objects.filter(action="cpm.set", org_slug="acme").count() == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["0", "--effective-date", "2026-01-01"], "positive"),
        (["-3", "--effective-date", "2026-01-01"], "positive"),
        (["abc", "--effective-date", "2026-01-01"], "not a number"),
        (["1.23456", "--effective-date", "2026-01-01"], "4 decimal places"),
        (["10", "--effective-date", "01/02/2026"], "not a date"),
        (["10", "--effective-date", "2026-01-01", "--currency", "dollars"], "3-letter"),
    ],
)
def test_bad_input_is_refused_and_nothing_written(acme, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("set_cpm", "--org", "acme", *args, stdout=io.StringIO())
    with schema_context(acme.schema_name):
        assert CpmRate.objects.count() == 0


def test_unknown_org(db):
    with pytest.raises(CommandError, match="unknown or inactive organisation"):
        call_command("set_cpm", "--org", "nope", "10", "--effective-date", "2026-01-01", stdout=io.StringIO())
