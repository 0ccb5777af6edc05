"""A Bombora load killed at any point (SIGKILL semantics, in a subprocess) leaves the previous week intact."""

from __future__ import annotations

import json

import psycopg
import pytest
from django.db import connection

from bombora.store import partition_name
from tests.cli import run_manage
from tests.ingestion.bombora_helpers import WEEK, surge_file

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def _autocommit() -> psycopg.Connection:
    """Reads on a connection of its own: the test's transaction must hold no lock the subprocess's swap needs."""
    cfg = connection.settings_dict
    return psycopg.connect(
        dbname=cfg["NAME"],
        user=cfg["USER"],
        host=cfg["HOST"] or None,
        port=cfg["PORT"] or None,
        password=cfg["PASSWORD"] or None,
        autocommit=True,
    )


def week_scores() -> list[tuple[str, int]]:
    with _autocommit() as conn:
        rows = conn.execute(
            "SELECT domain, score FROM public.ingestion_bombora_score WHERE week = %s ORDER BY 1", [WEEK]
        ).fetchall()
    return [(d, int(s)) for d, s in rows]


def staging() -> list[str]:
    with _autocommit() as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'ingestion_bombora_score_load%'")
        return [r[0] for r in rows.fetchall()]


@pytest.fixture
def committed_cleanup():
    yield
    with _autocommit() as conn:
        for (name,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE 'ingestion_bombora_score_%' "
            "OR tablename LIKE 'ingestion_bombora_domain_w%'"
        ).fetchall():
            conn.execute(f"DROP TABLE IF EXISTS public.{name}")
        conn.execute("DELETE FROM public.ingestion_bomboraweek")
        conn.execute("DELETE FROM public.ingestion_bomboratopicweek")
        conn.execute("DELETE FROM public.ingestion_bomboratopic")
        runs = [r[0] for r in conn.execute("SELECT id FROM public.ingestion_ingestionrun WHERE source = 'bombora'")]
        conn.execute("DELETE FROM public.ingestion_quarantinedrow WHERE run_id = ANY(%s)", [runs])
        conn.execute(
            "DELETE FROM public.jobs_job WHERE kind = 'ingestion.run_global' AND (params->>'run_id')::int = ANY(%s)",
            [runs],
        )
        conn.execute("DELETE FROM public.ingestion_ingestionrun WHERE id = ANY(%s)", [runs])


def cli(path, fault: str = ""):
    env = {"P360_DB_NAME": connection.settings_dict["NAME"], "P360_FAULT_INJECT": fault}
    return run_manage("ingest", "bombora", str(path), "--json", env=env)


def test_kill_at_every_step_keeps_the_previous_week(tmp_path, committed_cleanup):
    old = surge_file(tmp_path, [("a.com", "CRM", 70), ("b.com", "CRM", 20)], name="old_20261116.csv.gz")
    new = surge_file(tmp_path, [("a.com", "CRM", 75), ("c.com", "CRM", 90)], name="new_20261116.csv.gz")
    done = cli(old)
    assert done.returncode == 0, done.stderr
    before = [("a.com", 70), ("b.com", 20)]
    assert week_scores() == before

    for point in ("bombora:after_copy", "bombora:after_drop_old", "bombora:before_commit"):
        killed = cli(new, fault=point)
        assert killed.returncode == 137, (point, killed.stderr)
        assert week_scores() == before, point

    assert staging(), "the killed loads left a staging table behind (the next run drops it)"
    ok = cli(new)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["rows_loaded"] == 2
    assert week_scores() == [("a.com", 75), ("c.com", 90)]
    assert staging() == []
    with _autocommit() as conn:
        parts = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'public.ingestion_bombora_score'::regclass"
        ).fetchall()
    assert [p[0] for p in parts] == [partition_name(WEEK)]
