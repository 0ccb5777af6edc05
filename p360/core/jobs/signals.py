"""Task-cluster hooks: every task starts and ends in the public schema; workers report heartbeats.

A task run inline (django-q's sync mode: the tests) runs inside its caller, e.g. a job queued by another job's
transaction and run at its commit: the caller's schema comes back when the task ends (session 12; it was left in
public, and the calling job's next query failed: "relation ... does not exist")."""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.db import connection
from django.dispatch import receiver
from django_q.signals import post_execute, post_execute_in_worker, post_spawn, pre_execute

logger = logging.getLogger(__name__)

_inline = threading.local()  # `callers`: the schemas (tenants) of the callers of the inline tasks running now


def _is_inline(task: dict[str, Any] | None) -> bool:
    return bool(task and task.get("sync"))


@receiver(pre_execute)
def reset_schema_before_task(sender: Any, task: dict[str, Any] | None = None, **kwargs: Any) -> None:
    if _is_inline(task):
        _inline.__dict__.setdefault("callers", []).append(connection.tenant)  # type: ignore[attr-defined]
    connection.set_schema_to_public()  # type: ignore[attr-defined]


@receiver(post_execute_in_worker)
def restore_caller_schema(sender: Any, task: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """Sent where the task ran, also when an inline task raised (django-q then re-raises it to the caller)."""
    callers = getattr(_inline, "callers", None)
    if _is_inline(task) and callers:
        connection.set_tenant(callers.pop())  # type: ignore[attr-defined]


@receiver(post_execute)
def reset_schema_after_task(sender: Any, task: dict[str, Any] | None = None, **kwargs: Any) -> None:
    if not _is_inline(task):  # the monitor's process (inline: the caller's thread, already restored)
        connection.set_schema_to_public()  # type: ignore[attr-defined]


@receiver(post_spawn)
def heartbeat_on_spawn(sender: Any, **kwargs: Any) -> None:
    from p360.core.jobs.services import record_heartbeat

    try:
        record_heartbeat()
    except Exception:  # a heartbeat must never stop a worker from starting
        logger.warning("could not record the worker heartbeat", exc_info=True)
