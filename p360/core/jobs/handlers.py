"""Built-in job kinds. Domain apps register their own in their `jobs.py`."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from p360.core.jobs.services import JobContext, job_handler


@job_handler("org.health_check", title="Organisation health check")
def org_health_check(ctx: JobContext) -> dict[str, Any]:
    """Check the org's schema is at the migration head and count the rows of its tables."""
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    tenant_models = [
        model
        for app_label in settings.TENANT_APPS
        for model in apps.get_app_config(app_label.rsplit(".", 1)[-1]).get_models()
    ]
    counts: dict[str, int] = {}
    for index, model in enumerate(tenant_models, start=1):
        counts[model._meta.label_lower] = model.objects.count()  # type: ignore[attr-defined]
        ctx.progress(index, len(tenant_models))
    ctx.log(f"schema {connection.schema_name}: {len(pending)} pending migrations, {len(counts)} tables counted")  # type: ignore[attr-defined]
    return {"schema": connection.schema_name, "pending_migrations": len(pending), "row_counts": counts}  # type: ignore[attr-defined]
