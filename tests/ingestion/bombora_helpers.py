"""Writing Bombora files for tests: Master Surge / ADAT (headerless) and the CSV with a header."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

from django.db import connection

WEEK = dt.date(2026, 11, 16)  # a Monday


def surge_line(domain: str, topic: str, score: object, *, company: str = "Acme Co", category: str = "Tech") -> str:
    return f"{company},{domain},51-200 employees,software,{category},{topic},{score},greater boston area[{score}]|[77],United States"


def adat_line(domain: str, topic: str, score: object, metro: str = "greater boston area") -> str:
    return f"Acme Co,{domain},51-200,software,Tech,{topic},{score},B,{metro},{score},B,United States"


def write(path: Path, lines: list[str], *, gz: bool | None = None) -> Path:
    text = "".join(line + "\n" for line in lines).encode()
    if gz if gz is not None else path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text))
    else:
        path.write_bytes(text)
    return path


def surge_file(
    tmp: Path, rows: list[tuple[str, str, object]], name: str = "Output_MasterSurgeFile_20261119.csv.gz"
) -> Path:
    return write(tmp / name, [surge_line(d, t, s) for d, t, s in rows])


def scores(week: dt.date = WEEK) -> list[tuple[str, str, int]]:
    """(domain, topic name, score) of a week, sorted."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.domain, t.name, s.score FROM public.ingestion_bombora_score s "
            "JOIN public.ingestion_bomboratopic t ON t.id = s.topic_id WHERE s.week = %s ORDER BY 1, 2",
            [week],
        )
        return [tuple(row) for row in cursor.fetchall()]


def domain_rows(week: dt.date = WEEK) -> list[tuple[str, int, int, int]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT domain, topics, surging, max_score FROM public.ingestion_bombora_domain WHERE week = %s ORDER BY 1",
            [week],
        )
        return [tuple(row) for row in cursor.fetchall()]


def partitions(parent: str = "ingestion_bombora_score") -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            f"WHERE i.inhparent = 'public.{parent}'::regclass ORDER BY 1"
        )
        return [row[0] for row in cursor.fetchall()]


def staging_tables() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'ingestion_bombora_score_load%%'")
        return [row[0] for row in cursor.fetchall()]
