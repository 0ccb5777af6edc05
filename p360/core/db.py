"""Database helpers shared by the apps (settings-free: they read Django's configured connection)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from django.db import connection
from django.db.backends.utils import CursorWrapper


def connection_kwargs() -> dict[str, Any]:
    """psycopg.connect() arguments for a second connection to the same database as Django's."""
    params = connection.get_connection_params()
    return {k: v for k, v in params.items() if k in {"dbname", "user", "password", "host", "port", "sslmode"} and v}


@contextmanager
def qualified_cursor() -> Iterator[CursorWrapper]:
    """A cursor for a statement whose every table is schema-qualified (`"public"."tenants_user"`): it reads the
    same under any search_path, so no `SET search_path` round trip is sent for it (p360.core.pg_backend)."""
    free = getattr(connection, "search_path_free", None)
    with free() if free is not None else nullcontext(), connection.cursor() as cursor:
        yield cursor
