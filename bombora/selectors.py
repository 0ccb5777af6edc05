"""Reads for the Bombora admin pages: weeks, the topic catalogue with current-week counts, and per-org coverage."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import connection
from django.db.models import IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from bombora.models import BomboraTopic, BomboraTopicWeek
from bombora.store import DOMAIN_QUALIFIED, current_week
from tenants.models import Organization


def topics_with_counts(week: dt.date | None = None) -> QuerySet[BomboraTopic]:
    """Topics annotated with `week_domains` / `week_surging` of the week (default: the current one; 0 when absent)."""
    week = week or current_week() or dt.date.min  # no week loaded: every count is 0
    per_week = BomboraTopicWeek.objects.filter(topic=OuterRef("pk"), week=week)
    return BomboraTopic.objects.annotate(
        week_domains=Coalesce(Subquery(per_week.values("domains")[:1]), Value(0), output_field=IntegerField()),
        week_surging=Coalesce(Subquery(per_week.values("surging")[:1]), Value(0), output_field=IntegerField()),
    )


@dataclass(frozen=True)
class Coverage:
    org: Organization
    domains: int  # distinct domains of the org's current audience versions
    covered: int  # of those, with Bombora scores in the week
    surging: int  # of those, surging on at least one topic

    @property
    def share(self) -> float | None:
        return self.covered / self.domains if self.domains else None


def _org_coverage(schema: str, week: dt.date) -> tuple[int, int, int]:
    # Distinct domains of current versions only (one partition each), probed against the week's domain partition
    # by its index: cost grows with the org's domains, not with the 20-60M scores.
    sql = f"""
        WITH d AS (
            SELECT DISTINCT r.domain FROM "{schema}".audiences_record r
            JOIN "{schema}".audiences_audience a ON a.current_version_id = r.version_id
            WHERE r.domain IS NOT NULL AND r.domain <> ''
        )
        SELECT count(*), count(b.domain), count(*) FILTER (WHERE b.surging > 0)
        FROM d LEFT JOIN {DOMAIN_QUALIFIED} b ON b.week = %s AND b.domain = d.domain
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [week])
        domains, covered, surging = cursor.fetchone()
    return int(domains), int(covered), int(surging)


def coverage(orgs: QuerySet[Organization], week: dt.date | None = None) -> list[Coverage]:
    """Per organisation: how many of its audience-record domains have Bombora data in the week (default current)."""
    week = week or current_week()
    rows = []
    for org in orgs.order_by("name"):
        if week is None:
            rows.append(Coverage(org, 0, 0, 0))
            continue
        rows.append(Coverage(org, *_org_coverage(org.schema_name, week)))
    return rows
