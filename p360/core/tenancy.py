"""The current organisation, for the core (which sits below the tenants app and never imports it).

The organisation model is resolved through django-tenants' TENANT_MODEL setting (`get_tenant_model()`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import connection
from django_tenants.utils import get_public_schema_name, get_tenant_model

if TYPE_CHECKING:
    from tenants.models import Organization


def org_model() -> Any:
    """The Organization model class (TENANT_MODEL)."""
    return get_tenant_model()


def current_org() -> Organization | None:
    """The organisation whose schema the connection is in (None in the public schema).

    `schema_context` sets a stand-in tenant carrying only the schema name, so look the org up.
    """
    model = org_model()
    tenant = getattr(connection, "tenant", None)
    if isinstance(tenant, model) and tenant.pk is not None:
        return tenant  # type: ignore[return-value]
    if connection.schema_name == get_public_schema_name():  # type: ignore[attr-defined]
        return None
    return model.objects.filter(schema_name=connection.schema_name).first()  # type: ignore[attr-defined]


def org_storage_prefix(schema: str) -> str:
    """The one place that says where an org's files live in the storage (local folder or S3 bucket)."""
    return f"orgs/{schema}"


def org_storage_name(name: str) -> str:
    """Files of an org live under its own prefix in the storage (local folder or S3 bucket)."""
    return f"{org_storage_prefix(connection.schema_name)}/{name}"  # type: ignore[attr-defined]
