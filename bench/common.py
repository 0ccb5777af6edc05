"""Shared bench helpers: the bench database, timing, and the result table."""

from __future__ import annotations

import math
import os
import resource
import time
from collections.abc import Callable, Iterable
from typing import TypedDict

BENCH_DB_NAME = "p360_bench"
COLUMNS = ("workload", "size", "p360 figure", "baseline", "ratio", "goal")


class Row(TypedDict):
    workload: str
    size: str
    p360: str
    baseline: str
    ratio: str
    goal: str


# --- Database ------------------------------------------------------------------------------------


def _ensure_server_database(url: str, name: str) -> None:
    """With DATABASE_URL, create `name` on that server (via its `postgres` db) when it does not exist."""
    import dj_database_url
    import psycopg
    from psycopg import sql

    cfg = dj_database_url.parse(url)
    params = {
        "host": cfg.get("HOST") or None,
        "port": cfg.get("PORT") or None,
        "user": cfg.get("USER") or None,
        "password": cfg.get("PASSWORD") or None,
        **cfg.get("OPTIONS", {}),
    }
    conninfo = {key: value for key, value in params.items() if value}
    with psycopg.connect(dbname="postgres", autocommit=True, **conninfo) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _configure_environment() -> None:
    # Always the bench database: the dev database (`make up`) is never touched, whatever the environment says.
    os.environ["P360_DB_NAME"] = BENCH_DB_NAME
    os.environ["DJANGO_SETTINGS_MODULE"] = "p360.settings"
    os.environ.setdefault("P360_DEBUG", "0")  # production-like: no query log, no debug pages
    os.environ.setdefault("P360_LOG_LEVEL", "WARNING")
    if os.environ.get("DATABASE_URL", "").strip():
        _ensure_server_database(os.environ["DATABASE_URL"].strip(), BENCH_DB_NAME)


def _allow_test_client_host() -> None:
    from django.conf import settings

    if "testserver" not in settings.ALLOWED_HOSTS and "*" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]


def setup_database() -> str:
    """Point Django at the bench database, migrate every schema and load the demo data; return the db name."""
    _configure_environment()
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from p360.demo import load_demo

    _allow_test_client_host()
    call_command("migrate_schemas", verbosity=0)
    load_demo()
    connection.set_schema_to_public()  # type: ignore[attr-defined]
    return str(connection.settings_dict["NAME"])


# --- Timing --------------------------------------------------------------------------------------


def time_once(fn: Callable[[], object]) -> float:
    """Seconds one call of `fn` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_many(fn: Callable[[], object], runs: int, warmup: int = 0) -> list[float]:
    """Seconds per call of `fn`, `runs` times after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    return [time_once(fn) for _ in range(runs)]


def percentile(values: Iterable[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = min(len(ordered), max(1, math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


def mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items)


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def fmt_s(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 0.1 else fmt_ms(seconds)


def fmt_ratio(value: float, baseline: float) -> str:
    return f"x{value / baseline:.1f}" if baseline > 0 else "n/a"


def goal_text(goal: str, met: bool) -> str:
    return f"{goal} ({'met' if met else 'MISSED'})"


# --- Table ---------------------------------------------------------------------------------------


def _cells(row: Row) -> tuple[str, ...]:
    return (row["workload"], row["size"], row["p360"], row["baseline"], row["ratio"], row["goal"])


def format_table(rows: list[Row]) -> str:
    lines = [COLUMNS, *(_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]

    def render(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([render(lines[0]), rule, *(render(line) for line in lines[1:])])


def error_row(module: str, exc: BaseException) -> Row:
    message = f"ERROR {type(exc).__name__}: {exc}".splitlines()[0][:100]
    return Row(workload=module, size="-", p360=message, baseline="-", ratio="-", goal="-")


# --- CPU seconds: wall time is inflated by other work on a shared machine, CPU seconds much less ---------------
def own_cpu_s() -> float:
    """This process's CPU seconds (every thread)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def backend_cpu_s() -> float:
    """CPU seconds of this connection's PostgreSQL backend (a local server; 0 when it cannot be read)."""
    import psutil
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


def server_cpu_s() -> float | None:
    """CPU seconds of the PostgreSQL cluster this connection talks to (postmaster, its live children and the
    children it reaped, i.e. finished parallel workers); None when the server is not a local process."""
    import psutil
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    try:
        root = psutil.Process(psutil.Process(backend).ppid())
        times = root.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in root.children(recursive=True):
            try:
                child_times = child.cpu_times()
            except psutil.Error:
                continue  # exited meanwhile: now counted in the reaped children's times
            total += child_times.user + child_times.system
        return total
    except psutil.Error:
        return None


def cpu_text(own: object, server: object) -> str:
    """ "1.2 s Python + 3.4 s PostgreSQL" (n/a when the server's CPU could not be read)."""
    server_text = f"{float(server):.1f} s" if server is not None else "n/a"  # type: ignore[arg-type]
    return f"{float(own):.1f} s Python + {server_text} PostgreSQL"  # type: ignore[arg-type]
