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


# --- Raised faults (issue 15): the real error from the real code path, in this process -----------------------------
_raised: dict[str, int] = {}


def deadlock_point(name: str) -> None:
    """`P360_FAULT_DEADLOCK=<point>[:<times>]`: PostgreSQL itself raises a deadlock error (SQLSTATE 40P01)
    through Django's cursor at that point, the first <times> (default 1) times in this process.

    The error comes from the server (`RAISE ... USING ERRCODE`), so psycopg builds its real `DeadlockDetected`
    and Django wraps it exactly as it wraps a deadlock between two sessions; the statement runs in a
    savepoint/transaction of its own, which rolls back as the deadlock victim's would.
    """
    wanted = os.environ.get("P360_FAULT_DEADLOCK", "")
    point, _, times = wanted.rpartition(":") if wanted.rsplit(":", 1)[-1].isdigit() else (wanted, "", "1")
    if point != name or _raised.get(name, 0) >= int(times or "1"):
        return
    _raised[name] = _raised.get(name, 0) + 1
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        safe = "".join(c for c in name if c.isalnum() or c in ":_-")
        cursor.execute(
            f"DO $$ BEGIN RAISE EXCEPTION 'deadlock detected (injected at {safe})' USING ERRCODE = '40P01'; END $$"
        )


def raise_point(name: str) -> None:
    """`P360_FAULT_RAISE=<point>`: raise a RuntimeError at that point (a crash that unwinds the transaction)."""
    if os.environ.get("P360_FAULT_RAISE", "") == name:
        raise RuntimeError(f"fault injected at {name}")


def reset_raised_faults() -> None:
    _raised.clear()
