"""The backend skips a `SET search_path` only when the server reports that it already has that path."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from audiences.models import Audience

pytestmark = pytest.mark.django_db


def _sets(queries: CaptureQueriesContext) -> int:
    return sum(q["sql"].startswith("SET search_path") for q in queries.captured_queries)


def test_consecutive_queries_in_one_schema_send_one_set(acme: Any) -> None:
    with schema_context(acme.schema_name), CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert Audience.objects.get(pk=1).name == "acme-canary-audience-1"
    assert _sets(queries) <= 1
    assert len(queries.captured_queries) - _sets(queries) == 3


def test_switching_schemas_always_sets(acme: Any, globex: Any) -> None:
    for _ in range(3):
        for org in (acme, globex):
            with schema_context(org.schema_name):
                assert Audience.objects.get(pk=1).name == f"{org.slug}-canary-audience-1"


def test_a_savepoint_rollback_that_reverted_the_set_is_seen(acme: Any, globex: Any) -> None:
    """django-tenants #1262's case: the server is back on acme while Django still wants globex."""
    with schema_context(acme.schema_name):
        assert Audience.objects.get(pk=1).name == "acme-canary-audience-1"
        connection.set_tenant(globex)  # type: ignore[attr-defined]
        sid = transaction.savepoint_create()
        assert Audience.objects.get(pk=1).name == "globex-canary-audience-1"  # SET globex after the savepoint
        transaction.savepoint_rollback(sid)  # reverts that SET on the server
        assert Audience.objects.get(pk=1).name == "globex-canary-audience-1"


def test_a_set_sent_behind_djangos_back_is_seen(acme: Any) -> None:
    with schema_context(acme.schema_name):
        assert Audience.objects.get(pk=1).name == "acme-canary-audience-1"
        with connection.connection.cursor() as raw:  # the driver's own cursor: no wrapper, no SET of ours
            raw.execute('SET search_path = "public"')
        assert Audience.objects.get(pk=1).name == "acme-canary-audience-1"


def test_unknown_server_path_falls_back_to_a_set_per_query(acme: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(type(connections["default"]), "_server_search_path", lambda self: None)
    with schema_context(acme.schema_name), CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            Audience.objects.get(pk=1)
    assert _sets(queries) == 3


def test_a_qualified_cursor_sends_no_set_and_leaves_the_next_query_right(acme: Any, globex: Any) -> None:
    from p360.core.db import qualified_cursor

    with schema_context(acme.schema_name):
        assert Audience.objects.get(pk=1).name == "acme-canary-audience-1"  # the server is on acme's path
    connection.set_tenant(globex)  # type: ignore[attr-defined]
    with CaptureQueriesContext(connection) as queries, qualified_cursor() as cursor:
        cursor.execute('SELECT count(*) FROM "public"."tenants_organization" WHERE slug = %s', ["globex"])
        assert cursor.fetchone() == (1,)
    assert _sets(queries) == 0
    assert Audience.objects.get(pk=1).name == "globex-canary-audience-1"  # the SET it skipped comes now
