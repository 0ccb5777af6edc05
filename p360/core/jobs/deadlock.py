"""Document 004 A.4 "Retry once on deadlock": recognise PostgreSQL's deadlock error and run the work again.

Django wraps driver errors (`django.db.OperationalError` whose `__cause__` is psycopg's), so the check walks
the exception chain for `psycopg.errors.DeadlockDetected` (SQLSTATE 40P01). PostgreSQL has already rolled back
the victim's transaction when it raises, so running the same unit of work again is safe when that work is
idempotent (every ingestion load replaces its rows; jobs must be safe to deliver twice anyway).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import psycopg.errors

logger = logging.getLogger(__name__)
DEADLOCK_SQLSTATE = "40P01"


def is_deadlock(exc: BaseException | None) -> bool:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, psycopg.errors.DeadlockDetected) or getattr(exc, "sqlstate", None) == DEADLOCK_SQLSTATE:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def retry_once_on_deadlock[T](work: Callable[[], T], *, on_retry: Callable[[BaseException], None] | None = None) -> T:
    """Run `work`; if it fails with a deadlock, run it once more (a second deadlock propagates)."""
    try:
        return work()
    except Exception as exc:
        if not is_deadlock(exc):
            raise
        logger.warning("database deadlock (%s); retrying once", exc)
        if on_retry is not None:
            on_retry(exc)
    return work()
