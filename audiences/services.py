"""Writes for audiences (the import and builder issues add loading and materialising)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction

from audiences.models import Audience
from p360.audit.services import delete_with_audit, record
from p360.jobs.dispatch import org_task
from tenants.selectors import current_org

if TYPE_CHECKING:
    from tenants.models import User


def _snapshot(audience: Audience) -> dict[str, Any]:
    return {
        "name": audience.name,
        "kind": audience.kind,
        "status": audience.status,
        "description": audience.description,
    }


@org_task
@transaction.atomic
def audience_save(*, audience: Audience, actor: User | None, changed: list[str] | None = None) -> Audience:
    """Create or update an audience in the current org's schema, with an audit row."""
    created = audience.pk is None
    before = None if created else _snapshot(Audience.objects.get(pk=audience.pk))
    if created and audience.created_by_id is None and actor is not None and actor.is_authenticated:
        audience.created_by = actor
    audience.full_clean()
    audience.save()
    record(
        action="audience.created" if created else "audience.updated",
        actor=actor,
        org=current_org(),
        entity=audience,
        before=before,
        after=_snapshot(audience),
    )
    return audience


@org_task
@transaction.atomic
def audience_delete(*, audience: Audience, actor: User | None) -> None:
    delete_with_audit(audience, actor=actor, org=current_org(), before=_snapshot(audience))
