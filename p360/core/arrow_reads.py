"""Typed reads of big result sets straight into polars, through the ADBC PostgreSQL driver (issue 17).

The driver runs `COPY (query) TO STDOUT (FORMAT binary)` and decodes the rows column by column into Arrow in C++:
no CSV text to format and parse again, and no Python call per row (psycopg's COPY yields one message per row: 10M
rows were 10M+ Python iterations before a byte was parsed). Integers, floats, dates and booleans arrive typed.

It opens its own connection, so it only sees committed rows: inside a transaction (tests, or a caller that just
wrote the rows) `available()` is false and callers read through Django's connection instead.
"""

from __future__ import annotations

import logging
from typing import Any

import polars as pl
from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)


def available() -> bool:
    """Whether a read may go through its own ADBC connection now (setting on, driver installed, no open transaction)."""
    if not getattr(settings, "P360_ARROW_READS", True) or connection.in_atomic_block:
        return False
    try:
        import adbc_driver_postgresql.dbapi  # noqa: F401
    except ImportError:  # an installation without the driver: the callers' COPY CSV path still works
        return False
    return True


def conninfo() -> str:
    """libpq parameters of Django's own connection (the same server, database, user and TLS settings)."""
    from psycopg.conninfo import make_conninfo

    connection.ensure_connection()
    info = connection.connection.info  # type: ignore[union-attr]
    password = info.password
    return make_conninfo(info.dsn, password=password) if password else str(info.dsn)


def connect(dsn: str | None = None) -> Any:
    """A new ADBC connection (close it: use as a context manager). `dsn` from conninfo(), read on the caller's
    thread: Django's connection belongs to the thread that opened it."""
    import adbc_driver_postgresql.dbapi as adbc

    return adbc.connect(dsn or conninfo(), autocommit=True)


def read(sql: str, schema: dict[str, Any], *, dsn: str | None = None, db: Any = None) -> pl.DataFrame:
    """The query's rows as a frame with these column names and dtypes (the query's columns in the same order).

    `db` is an open ADBC connection to reuse (one per thread); without it a connection is opened for this read."""
    if db is None:
        with connect(dsn) as own:
            return read(sql, schema, db=own)
    with db.cursor() as cursor:
        cursor.execute(sql)
        table = cursor.fetch_arrow_table()
    frame = pl.from_arrow(table, rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    frame.columns = list(schema)
    casts: dict[Any, Any] = {name: dtype for name, dtype in schema.items() if frame.schema[name] != dtype}
    return frame.cast(casts) if casts else frame  # e.g. PostgreSQL integer (Int32) where the caller keeps Int64
