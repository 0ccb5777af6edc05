"""Task-cluster hooks: every task starts and ends in the public schema; workers report heartbeats."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.dispatch import receiver
from django_q.signals import post_execute, post_spawn, pre_execute


@receiver(pre_execute)
def reset_schema_before_task(sender: Any, **kwargs: Any) -> None:
    connection.set_schema_to_public()


@receiver(post_execute)
def reset_schema_after_task(sender: Any, **kwargs: Any) -> None:
    connection.set_schema_to_public()


@receiver(post_spawn)
def heartbeat_on_spawn(sender: Any, **kwargs: Any) -> None:
    from p360.jobs.services import record_heartbeat

    try:
        record_heartbeat()
    except Exception:  # noqa: BLE001  a heartbeat must never stop a worker from starting
        pass
