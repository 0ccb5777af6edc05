"""Ops commands: results, --json, and one-line errors with a non-zero exit on bad input."""

from __future__ import annotations

import json
import subprocess
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from tenants.models import Membership, Organization, User
from tests.cli import run_manage

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run manage.py against the test database."""
    return run_manage(*args, env={"P360_DB_NAME": connection.settings_dict["NAME"]})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create_org", "Bad_Slug", "--name", "X"], "invalid slug 'Bad_Slug'"),
        (["create_org", "acme", "--name", "Dup"], "already exists"),
        (["create_org", "admin", "--name", "Reserved"], "reserved"),
        (["create_org", "ok-slug"], "--name"),
        (["create_user", "someone@example.com", "--role", "boss"], "unknown role 'boss'"),
        (["create_user", "someone@example.com", "--role", "marketer", "--org", "nope"], "unknown organisation 'nope'"),
        (["create_user", "someone@example.com", "--role", "marketer"], "exactly one organisation"),
        (["create_user", "not-an-email", "--role", "super_admin"], "invalid email"),
        (["create_user", "marketer@acme.test", "--role", "marketer", "--org", "acme"], "already exists"),
        (["create_api_token", "nobody@example.com"], "no user with email"),
    ],
)
def test_bad_input_gives_one_line_error_and_non_zero_exit(args, message):
    before = (Organization.objects.count(), User.objects.count())
    completed = run_cli(*args)
    assert completed.returncode != 0
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("error: ") and message in lines[0]
    assert (Organization.objects.count(), User.objects.count()) == before


def test_help_works_for_every_command():
    for command in ("create_org", "create_user", "create_api_token", "demo"):
        completed = run_cli(command, "--help")
        assert completed.returncode == 0 and "--json" in completed.stdout


def test_create_org_creates_a_migrated_schema_and_prints_json():
    out = StringIO()
    call_command("create_org", "initech", "--name", "Initech", "--ttd-advertiser-id", "ini01", "--json", stdout=out)
    result = json.loads(out.getvalue())
    assert result == {
        "id": result["id"],
        "slug": "initech",
        "name": "Initech",
        "schema": "org_initech",
        "url": "/o/initech/",
    }
    org = Organization.objects.get(slug="initech")
    assert org.domains.get().domain == "initech"
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('org_initech.audiences_audience')")
        assert cursor.fetchone()[0] is not None


def test_create_user_assigns_orgs_and_create_api_token_prints_a_working_token(client, acme):
    call_command(
        "create_user",
        "new.manager@example.com",
        "--role",
        "campaign_manager",
        "--org",
        "acme",
        "--org",
        "globex",
        stdout=StringIO(),
    )
    user = User.objects.get(email="new.manager@example.com")
    assert user.is_staff and not user.is_superuser
    assert sorted(Membership.objects.filter(user=user).values_list("org__slug", flat=True)) == ["acme", "globex"]
    out = StringIO()
    call_command("create_api_token", "new.manager@example.com", stdout=out)
    token = out.getvalue().strip()
    assert client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token}").json()["orgs"] == ["acme", "globex"]


def test_demo_is_idempotent():
    first, second = StringIO(), StringIO()
    call_command("demo", "--json", stdout=first)
    call_command("demo", "--json", stdout=second)
    assert json.loads(first.getvalue())["orgs"] == ["acme", "globex"]
    assert json.loads(second.getvalue())["created"] == {
        "orgs": 0,
        "users": 0,
        "audiences": 0,
        "campaigns": 0,
        "imports": 0,
    }
    assert {u["role"] for u in json.loads(second.getvalue())["logins"]} == {
        "super_admin",
        "campaign_manager",
        "marketer",
    }
