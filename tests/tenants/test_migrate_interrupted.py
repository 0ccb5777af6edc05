"""`migrate_schemas` killed half-way (SIGKILL) and rerun completes; every schema ends at the same
migration head (trust checklist 10)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from tenants.models import Organization
from tenants.services import org_create
from tests import schema_clone
from tests.cli import ROOT, run_manage

pytestmark = [pytest.mark.slow, pytest.mark.django_db]
ROLLED_BACK_APPS = ("campaigns", "audiences")


@pytest.fixture(scope="module")
def behind_orgs(django_db_setup: Any, django_db_blocker: Any) -> Iterator[list[Organization]]:
    """Two committed orgs whose schemas are rolled back to before the tenant apps' migrations. Two make
    both states a rerun must finish: the first is killed inside a migration, the second not yet reached
    (schemas are migrated one after the other). The first is rolled back by `migrate_schemas ... zero`;
    the second gets a replay of that rolled-back schema (tests/schema_clone.py), the same state."""
    with django_db_blocker.unblock():
        orgs = [org_create(slug=f"behind-{index}", name=f"Behind {index}") for index in range(2)]
        env = {"P360_DB_NAME": connection.settings_dict["NAME"]}
        try:
            rolled_back = orgs if not schema_clone.replaying() else orgs[:1]
            for org in rolled_back:
                for app in ROLLED_BACK_APPS:
                    done = run_manage("migrate_schemas", f"--schema={org.schema_name}", app, "zero", env=env)
                    assert done.returncode == 0, done.stderr
            for org in orgs[len(rolled_back) :]:
                schema_clone.replace_schema(org.schema_name, from_schema=orgs[0].schema_name)
            yield orgs
        finally:
            connection.set_schema_to_public()  # type: ignore[attr-defined]
            for org in orgs:
                org.domains.all().delete()
                org.delete(force_drop=True)


def applied_in(schema: str) -> set[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT app, name FROM "{schema}".django_migrations')
        return set(cursor.fetchall())


def test_killed_migrate_schemas_completes_when_rerun(behind_orgs):
    env = {**os.environ, "P360_DB_NAME": connection.settings_dict["NAME"]}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "migrate_schemas", "-v", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in process.stdout:  # kill at the first tenant migration actually being applied
        if "Applying audiences" in line or "Applying campaigns" in line:
            os.kill(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert any(("audiences", "0001_initial") not in applied_in(org.schema_name) for org in behind_orgs)

    rerun = run_manage("migrate_schemas", env={"P360_DB_NAME": connection.settings_dict["NAME"]})
    assert rerun.returncode == 0, rerun.stderr

    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    head = {key for key in graph.nodes if key[0] in ROLLED_BACK_APPS}
    schemas = [org.schema_name for org in behind_orgs] + ["org_acme", "org_globex"]
    for schema in schemas:
        assert head <= applied_in(schema), schema
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT to_regclass('{schema}.audiences_audience'), to_regclass('{schema}.campaigns_campaign')"
            )
            assert all(cursor.fetchone()), schema
