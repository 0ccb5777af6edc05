"""Organisation creation: `org_create` (schema + every tenant migration) against an empty CREATE SCHEMA."""

from __future__ import annotations

import secrets
from functools import partial

from bench.common import Row, fmt_ratio, fmt_s, goal_text, mean, time_once

ORDER = 10
ORGS = 5
SLUG_PREFIX = "bench-"
GOAL_SECONDS = 2.0


def _drop_bench_orgs() -> int:
    """Delete every bench org (routing rows, memberships and schema); audit rows are append-only and stay."""
    from django.db import connection

    from tenants.models import Organization

    connection.set_schema_to_public()  # type: ignore[attr-defined]
    orgs = list(Organization.objects.filter(slug__startswith=SLUG_PREFIX))
    for org in orgs:
        org.delete(force_drop=True)
    return len(orgs)


def _time_org_creates(token: str) -> list[float]:
    from django.db import connection

    from tenants.services import org_create

    timings = []
    for index in range(ORGS):
        slug = f"{SLUG_PREFIX}{token}-{index}"
        timings.append(time_once(partial(org_create, slug=slug, name=f"Bench org {slug}")))
        connection.set_schema_to_public()  # type: ignore[attr-defined]
    return timings


def _time_empty_schemas(token: str) -> list[float]:
    """Seconds to create (and commit) an empty schema; dropped again outside the timing."""
    from django.db import connection

    timings = []
    with connection.cursor() as cursor:
        for index in range(ORGS):
            schema = f"bench_empty_{token}_{index}"
            timings.append(time_once(partial(cursor.execute, f'CREATE SCHEMA "{schema}"')))
            cursor.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return timings


def org_creation() -> Row:
    token = secrets.token_hex(3)
    _drop_bench_orgs()  # leftovers of an interrupted run
    try:
        per_org = mean(_time_org_creates(token))
    finally:
        _drop_bench_orgs()
    per_schema = mean(_time_empty_schemas(token))
    return Row(
        workload="org creation (schema + migrations)",
        size=f"{ORGS} orgs",
        p360=f"{fmt_s(per_org)} per org",
        baseline=f"{fmt_s(per_schema)} (empty CREATE SCHEMA)",
        ratio=fmt_ratio(per_org, per_schema),
        goal=goal_text(f"< {GOAL_SECONDS:g} s per org", per_org < GOAL_SECONDS),
    )


def run() -> list[Row]:
    return [org_creation()]
