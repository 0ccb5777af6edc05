"""Reads of the audit log."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from p360.core.audit.models import AuditEvent
from tenants.access import orgs_manageable_by
from tenants.models import Role


def events_visible_to(user: Any) -> QuerySet[AuditEvent]:
    """Every event for super admins; for others, the events of the orgs they manage."""
    if user is not None and user.is_authenticated and user.is_active and user.role == Role.SUPER_ADMIN:
        return AuditEvent.objects.all()
    return AuditEvent.objects.filter(org_id__in=list(orgs_manageable_by(user).values_list("pk", flat=True)))
