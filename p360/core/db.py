"""Database helpers shared by the apps (settings-free: they read Django's configured connection)."""

from __future__ import annotations

from typing import Any

from django.db import connection


def connection_kwargs() -> dict[str, Any]:
    """psycopg.connect() arguments for a second connection to the same database as Django's."""
    params = connection.get_connection_params()
    return {k: v for k, v in params.items() if k in {"dbname", "user", "password", "host", "port", "sslmode"} and v}
