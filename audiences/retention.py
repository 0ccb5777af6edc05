"""Audiences' retention step (issue 16, "logs": 90 days): the quarantine files of audience imports (the rows a
file import refused). The file goes; the import row stays (it is the audience's history) with the file forgotten.
Registered in audiences/registrations.py; run by the core's engine in the org's schema and transaction."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from django.core.files.storage import default_storage

from audiences.models import AudienceImport

if TYPE_CHECKING:
    from tenants.models import Organization


def import_quarantine_step(org: Organization | None, *, cutoff: dt.datetime, dry_run: bool) -> dict[str, Any]:
    imports = list(
        AudienceImport.objects.filter(created_at__lt=cutoff)
        .exclude(quarantine_file="")
        .values_list("pk", "quarantine_file")
    )
    if not dry_run and imports:
        for _, name in imports:
            default_storage.delete(name)
        AudienceImport.objects.filter(pk__in=[pk for pk, _ in imports]).update(quarantine_file="")
    return {"rows": {"audience_quarantine_files": len(imports)}}
