"""Clean-up for tests whose imports commit (subprocesses, autocommit, parallel loaders): outside the test's
transaction, what they wrote must be removed by hand."""

from __future__ import annotations

from django.db import connection
from django_tenants.utils import schema_context

from audiences import records
from audiences.models import Audience, AudienceImport


def drop_committed_import(name: str, schema: str = "org_acme") -> None:
    """Drop audience `name`'s record partitions, the audience and its import rows in `schema`."""
    connection.set_schema_to_public()
    with schema_context(schema):
        for version in Audience.objects.filter(name=name).values_list("versions__pk", flat=True):
            if version:
                records.drop_partition(version)
        Audience.objects.filter(name=name).delete()
        AudienceImport.objects.filter(audience_name=name).delete()
    connection.set_schema_to_public()
