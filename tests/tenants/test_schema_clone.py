"""The suite's fast org creation (tests/schema_clone.py: acme's migrated schema replayed) makes the same
schema as the product's path (`org_create` running every migration), object for object and row for row."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from tenants.models import Organization
from tenants.services import org_create
from tests import schema_clone

pytestmark = [pytest.mark.django_db]


@pytest.fixture(scope="module")
def migrated_and_replayed(django_db_setup: Any, django_db_blocker: Any) -> Iterator[tuple[Organization, Organization]]:
    """Two committed orgs (pg_dump reads from its own connection): one migrated, one replayed."""
    if schema_clone.pg_dump_path() is None:
        pytest.skip("no pg_dump: the suite creates every org through the migrations")
    with django_db_blocker.unblock():
        created: list[Organization] = []
        try:
            with schema_clone.migrations_path():
                created.append(org_create(slug="made-by-migrations", name="Made by migrations"))
            created.append(org_create(slug="made-by-replay", name="Made by replay"))
            yield created[0], created[1]
        finally:
            connection.set_schema_to_public()  # type: ignore[attr-defined]
            for org in created:
                org.domains.all().delete()
                org.delete(force_drop=True)


def normalised_dump(schema: str) -> str:
    text = schema_clone.dump_schema(schema)
    text = re.sub(r"^\\(?:un)?restrict .*$", "", text, flags=re.MULTILINE)  # a random key per dump
    text = re.sub(rf"\b{schema}\b", "<schema>", text)
    # When each migration was applied (django_migrations.applied) differs between the two orgs.
    return re.sub(r"'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?\+00'", "'<applied>'", text)


def test_the_session_replays_a_migrated_schema(migrated_and_replayed):
    migrated, replayed = migrated_and_replayed
    assert schema_clone.replaying()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT app, name FROM {migrated.schema_name}.django_migrations")
        applied = set(cursor.fetchall())
    assert applied == set(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)  # the real path: all of them

    migrated_dump, replayed_dump = normalised_dump(migrated.schema_name), normalised_dump(replayed.schema_name)
    assert "CREATE TABLE <schema>.audiences_record" in migrated_dump and "PARTITION BY LIST" in migrated_dump
    assert replayed_dump == migrated_dump


def test_orgs_made_by_replay_are_isolated_and_routed(migrated_and_replayed):
    """A replayed org's tables are its own (not acme's, whose dump it replays) and its routing row exists."""
    from django_tenants.utils import schema_context

    from audiences.models import Audience

    _, replayed = migrated_and_replayed
    assert replayed.domains.get().domain == "made-by-replay"
    with schema_context(replayed.schema_name):
        assert not Audience.objects.exists()
        assert Audience.objects.create(name="only here").pk == 1
    with schema_context("org_acme"):
        assert not Audience.objects.filter(name="only here").exists()
