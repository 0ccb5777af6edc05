"""Running work for an organisation on the task cluster, always inside that org's schema.

The cluster's database connection starts in the public schema and is reset to it before and
after every task (see `signals`). Work for an org is enqueued with `enqueue_for_org`, which stamps
the schema name on the task; `run_in_schema` enters it. A function decorated with `org_task`
refuses to run in the public schema, so a task that arrives without a schema fails closed.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.utils.module_loading import import_string
from django_q.tasks import async_task
from django_tenants.utils import get_public_schema_name, schema_context

from p360.core import context
from p360.core.tenancy import org_model

logger = logging.getLogger(__name__)


class MissingOrgSchema(RuntimeError):
    """A per-organisation task was asked to run without an organisation."""


def enqueue_for_org(org: Any, func: str, *args: Any, task_name: str | None = None, **kwargs: Any) -> str:
    """Enqueue `func` (dotted path) to run inside `org`'s schema; returns the django-q task id."""
    if not org or not getattr(org, "schema_name", None) or org.schema_name == get_public_schema_name():
        raise MissingOrgSchema("enqueue_for_org needs a real organisation")
    return async_task(
        "p360.core.jobs.dispatch.run_in_schema",
        org.schema_name,
        func,
        list(args),
        kwargs,
        task_name=task_name or f"{org.slug}:{func.rsplit('.', 1)[-1]}",
        group=org.slug,
    )


def run_in_schema(schema_name: str | None, func: str, args: list[Any] | None = None, kwargs: dict | None = None) -> Any:
    """Task entry point: resolve the org by schema name and call `func` inside its schema."""
    if not schema_name or schema_name == get_public_schema_name():
        logger.error("refused task %s: no organisation schema given", func)
        raise MissingOrgSchema(f"task {func} refused: no organisation schema given")
    org = org_model().objects.filter(schema_name=schema_name).first()
    if org is None or not org.is_active:
        logger.error("refused task %s: unknown or inactive schema %s", func, schema_name)
        raise MissingOrgSchema(f"task {func} refused: unknown or inactive organisation schema {schema_name!r}")
    with schema_context(schema_name), context.bound(org=org.slug):
        return import_string(func)(*(args or []), **(kwargs or {}))


def org_task[**P, R](fn: Callable[P, R]) -> Callable[P, R]:
    """Mark a function that must only run inside an organisation's schema."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if connection.schema_name == get_public_schema_name():  # type: ignore[attr-defined]
            logger.error("refused %s.%s: called in the public schema", fn.__module__, fn.__qualname__)
            raise MissingOrgSchema(f"{fn.__qualname__} must run inside an organisation schema; refusing public")
        return fn(*args, **kwargs)

    return wrapper
