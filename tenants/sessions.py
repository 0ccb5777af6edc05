"""Django's database session store, with its read as one schema-qualified statement.

The session is the first thing a page or a session-authenticated API request reads. Django's store reads it
through the ORM, so the connection first gets `SET search_path = public` (a round trip), and the org's path again
after it. Written as `"public"."django_session"`, the same read is right under any search_path and needs no SET
(p360.core.db.qualified_cursor). Same table, same rows, same expiry rule: existing sessions stay valid.
"""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

from p360.core.db import qualified_cursor


class SessionStore(DatabaseSessionStore):
    def _get_session_from_db(self) -> Any:
        """The unexpired session row with this key, or None (and the key forgotten), as Django's store does."""
        model = self.model
        fields = model._meta.concrete_fields
        columns = ", ".join(f'"{f.column}"' for f in fields)
        table = f'"{get_public_schema_name()}"."{model._meta.db_table}"'
        with qualified_cursor() as cursor:
            cursor.execute(
                f"SELECT {columns} FROM {table} WHERE session_key = %s AND expire_date > %s",
                [self.session_key, timezone.now()],
            )
            row = cursor.fetchone()
        if row is None:
            self._session_key = None
            return None
        return model.from_db("default", [f.attname for f in fields], row)
