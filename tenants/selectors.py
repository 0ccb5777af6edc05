"""Reads about organisations."""

from __future__ import annotations

from django.db import connection
from django_tenants.utils import get_public_schema_name

from tenants.models import Organization


def current_org() -> Organization | None:
    """The organisation whose schema the connection is in (None in the public schema).

    `schema_context` sets a stand-in tenant carrying only the schema name, so look the org up.
    """
    tenant = getattr(connection, "tenant", None)
    if isinstance(tenant, Organization) and tenant.pk is not None:
        return tenant
    if connection.schema_name == get_public_schema_name():  # type: ignore[attr-defined]
        return None
    return Organization.objects.filter(schema_name=connection.schema_name).first()  # type: ignore[attr-defined]
