"""Task-cluster hooks: every task starts and ends in the public schema; workers report heartbeats."""

from __future__ import annotations

import logging
from typing import Any

from django.db import connection
from django.dispatch import receiver
from django_q.signals import post_execute, post_spawn, pre_execute

logger = logging.getLogger(__name__)


@receiver(pre_execute)
def reset_schema_before_task(sender: Any, **kwargs: Any) -> None:
    connection.set_schema_to_public()  # type: ignore[attr-defined]


@receiver(post_execute)
def reset_schema_after_task(sender: Any, **kwargs: Any) -> None:
    connection.set_schema_to_public()  # type: ignore[attr-defined]


@receiver(post_spawn)
def heartbeat_on_spawn(sender: Any, **kwargs: Any) -> None:
    from p360.core.jobs.services import record_heartbeat

    try:
        record_heartbeat()
    except Exception:  # a heartbeat must never stop a worker from starting
        logger.warning("could not record the worker heartbeat", exc_info=True)
