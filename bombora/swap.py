"""The swap of a staged Bombora week into the partitioned tables, and the history kept
(P360_BOMBORA_HISTORY_WEEKS): older ready weeks are pruned, a file older than the history is refused."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection
from django.utils import timezone

from bombora.models import BomboraTopic, BomboraTopicWeek, BomboraWeek, BomboraWeekStatus
from bombora.staging import LoadStats, staging_name
from bombora.store import DOMAIN_QUALIFIED, QUALIFIED, domain_partition_name, partition_name
from p360.core.fault_inject import fault_point
from p360.core.intake.tables import FileRejected

if TYPE_CHECKING:
    from ingestion.models import IngestionRun  # a load belongs to an ingestion run (typing only: no upward import)


def history_weeks() -> int:
    return max(1, int(getattr(settings, "P360_BOMBORA_HISTORY_WEEKS", 12)))


def check_not_too_old(week: dt.date) -> None:
    newer = BomboraWeek.objects.filter(status=BomboraWeekStatus.READY, week__gt=week).count()
    if newer >= history_weeks():
        raise FileRejected(
            f"week {week:%Y-%m-%d} is older than the {history_weeks()} weeks kept (P360_BOMBORA_HISTORY_WEEKS)"
        )


def _partition_exists(cursor: object, name: str) -> bool:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [f"public.{name}"])  # type: ignore[attr-defined]
    return bool(cursor.fetchone()[0])  # type: ignore[attr-defined]


def swap_in(run: IngestionRun, week: dt.date, stats: LoadStats, topic_counts: dict[int, list[int]]) -> list[dt.date]:
    """Replace the week's partition by the staging table and prune history (the caller's transaction)."""
    table = staging_name(run.pk)
    with connection.cursor() as cursor:
        # One swap at a time (two loads of one week: the later one wins, whole).
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('p360:bombora:swap'))")
        for staged, target, parent, index in (
            (table, partition_name(week), QUALIFIED, "td"),
            (f"{table}_d", domain_partition_name(week), DOMAIN_QUALIFIED, "domain"),
        ):
            if _partition_exists(cursor, target):
                cursor.execute(f"DROP TABLE public.{target}")
            fault_point("bombora:after_drop_old")
            cursor.execute(f"ALTER TABLE public.{staged} RENAME TO {target}")
            cursor.execute(
                f"ALTER INDEX public.{table}_{'d_domain' if index == 'domain' else 'td'} RENAME TO {target}_{index}"
            )
            cursor.execute(f"ALTER TABLE public.{target} RENAME CONSTRAINT {staged}_week TO {target}_week")
            cursor.execute(
                f"ALTER TABLE {parent} ATTACH PARTITION public.{target} FOR VALUES IN (DATE '{week.isoformat()}')"
            )
            cursor.execute(f"ALTER TABLE public.{target} ALTER COLUMN week DROP DEFAULT")
            cursor.execute(f"ALTER TABLE public.{target} RESET (autovacuum_enabled)")
    topic_ids = set(topic_counts)
    BomboraTopicWeek.objects.filter(week=week).delete()
    BomboraTopicWeek.objects.bulk_create(
        [BomboraTopicWeek(week=week, topic_id=t, domains=n, surging=k) for t, (n, k) in topic_counts.items()],
        batch_size=2000,
    )
    BomboraTopic.objects.filter(pk__in=topic_ids, first_seen_week__isnull=True).update(first_seen_week=week)
    BomboraTopic.objects.filter(pk__in=topic_ids, first_seen_week__gt=week).update(first_seen_week=week)
    BomboraTopic.objects.filter(pk__in=topic_ids).exclude(last_seen_week__gte=week).update(last_seen_week=week)
    BomboraWeek.objects.update_or_create(
        week=week,
        defaults={
            "status": BomboraWeekStatus.READY,
            "run": run,
            "rows": stats.loaded,
            "domains": stats.domains,
            "topics": len(topic_ids),
            "surging_rows": stats.surging,
            "file_name": run.file_name[:500],
            "loaded_at": timezone.now(),
        },
    )
    fault_point("bombora:before_commit")
    return prune_history()


def prune_history() -> list[dt.date]:
    """Drop the partitions of ready weeks beyond the newest P360_BOMBORA_HISTORY_WEEKS; mark them pruned."""
    ready = list(BomboraWeek.objects.filter(status=BomboraWeekStatus.READY).order_by("-week"))
    pruned = []
    with connection.cursor() as cursor:
        for week in ready[history_weeks() :]:
            for name in (partition_name(week.week), domain_partition_name(week.week)):
                if _partition_exists(cursor, name):
                    cursor.execute(f"DROP TABLE public.{name}")
            BomboraTopicWeek.objects.filter(week=week.week).delete()
            week.status = BomboraWeekStatus.PRUNED
            week.save(update_fields=["status"])
            pruned.append(week.week)
    return pruned
