"""Fault injection for the trust tests, driven by `P360_FAULT=<point>[:<fault>]`.

- `<point>` (or `<point>:kill`): this process dies with SIGKILL at that point, as under the OOM killer,
  so no cleanup code runs.
- `<point>:disconnect`: the database ends this process's session at that point (as when PostgreSQL
  restarts or fails over): the backend is terminated from a second connection and work goes on, so the
  next query on the lost session fails the way it would in production.

A no-op unless the variable names the point.
"""

from __future__ import annotations

import os
import signal


def fault_point(name: str) -> None:
    wanted = os.environ.get("P360_FAULT", "")
    point, _, fault = wanted.partition(":")
    if point != name:
        return
    if fault == "disconnect":
        _terminate_own_backend()
    else:
        os.kill(os.getpid(), signal.SIGKILL)


def _terminate_own_backend() -> None:
    import psycopg  # imported only when a fault fires (tests), never on the normal path
    from django.db import connection

    from p360.core.db import connection_kwargs

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with psycopg.connect(**connection_kwargs(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
