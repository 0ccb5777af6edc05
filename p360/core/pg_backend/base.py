"""django-tenants' backend that skips a `SET search_path` the server already has.

django-tenants sends `SET search_path` before every statement (we keep `TENANT_LIMIT_SET_CALLS = False`:
its cache of what it last set goes stale when a rollback reverts the SET, django-tenants #1262). That is
one extra round trip per query, half of all round trips of a small API request, and the costliest part
of a request on a busy machine (each round trip waits for the server process to get a core).

PostgreSQL 18 reports `search_path` to the client (ParameterStatus, like `TimeZone`), also when a
ROLLBACK or ROLLBACK TO SAVEPOINT reverts it. So the client library always holds the server's actual
value, and a SET is skipped only when that value is the one our own SET of the same schemas produced:
no cached belief of ours can go stale. A server that does not report it (older PostgreSQL, a pooler that
filters it) leaves the value unknown and every statement gets its SET, exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django_tenants.postgresql_backend import base as tenants_base

_SEARCH_PATH = b"search_path"


class DatabaseWrapper(tenants_base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Wanted schemas -> the server's report after our SET of them (its spelling: quotes, spaces).
        self._reported_search_path: dict[tuple[str, ...], bytes] = {}
        self._qualified_only = False
        super().__init__(*args, **kwargs)

    @contextmanager
    def search_path_free(self) -> Iterator[None]:
        """Cursors opened inside send no SET: only for statements whose every table is schema-qualified, which
        mean the same under any search_path (a request's token lookup runs on whatever org's path is there)."""
        previous, self._qualified_only = self._qualified_only, True
        try:
            yield
        finally:
            self._qualified_only = previous

    def _server_search_path(self) -> bytes | None:
        """The server's current search_path as last reported on this connection, None if unknown."""
        pgconn = getattr(self.connection, "pgconn", None)  # psycopg 3 only
        if pgconn is None or getattr(self.connection, "_pipeline", None) is not None:
            return None  # pipeline mode: reports may still be unread
        value = pgconn.parameter_status(_SEARCH_PATH)
        return value if isinstance(value, bytes) else None

    def _handle_search_path(self, cursor: Any = None) -> None:
        if self._qualified_only:
            return
        if not self._setting_search_path and self.schema_name and self.connection is not None:
            wanted = tuple(self._get_cursor_search_paths())
            reported = self._reported_search_path.get(wanted)
            if reported is not None and reported == self._server_search_path():
                self.search_path_set_schemas = list(wanted)
                return
            super()._handle_search_path(cursor)
            if self.search_path_set_schemas is not None and list(wanted) == self.search_path_set_schemas:
                current = self._server_search_path()
                if current is not None:
                    self._reported_search_path[wanted] = current
            return
        super()._handle_search_path(cursor)
