"""Writing audit events. Every service that changes something that matters calls `record`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.core.serializers.json import DjangoJSONEncoder

from p360.core import context
from p360.core.audit.models import AuditEvent

if TYPE_CHECKING:
    from tenants.models import Organization, User


def _jsonable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def record(
    *,
    action: str,
    actor: User | None = None,
    org: Organization | None = None,
    entity: object | None = None,
    entity_type: str = "",
    entity_id: str | int = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    actor_email: str = "",
) -> AuditEvent:
    """Append one audit event; request id, IP and user agent come from the current context."""
    ctx = context.current()
    if entity is not None:
        entity_type = entity_type or type(entity)._meta.label_lower  # type: ignore[attr-defined]
        entity_id = entity_id or getattr(entity, "pk", "")
    actor_is_user = actor is not None and getattr(actor, "is_authenticated", False)
    return AuditEvent.objects.create(
        org_id=org.pk if org is not None else None,
        org_slug=org.slug if org is not None else "",
        actor_id=actor.pk if actor_is_user else None,  # type: ignore[union-attr]
        actor_email=(actor.email if actor_is_user else actor_email)[:254],  # type: ignore[union-attr]
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id),
        before=_jsonable(before),
        after=_jsonable(after),
        ip=ctx.ip,
        user_agent=ctx.user_agent,
        request_id=ctx.request_id if ctx.request_id != "-" else "",
    )


def delete_with_audit(obj: Any, *, actor: User | None, org: Organization | None, before: dict[str, Any]) -> None:
    """Delete a model instance and record `<model>.deleted` with its last state."""
    entity_type, entity_id = obj._meta.label_lower, obj.pk
    obj.delete()
    record(
        action=f"{obj._meta.model_name}.deleted",
        actor=actor,
        org=org,
        entity_type=entity_type,
        entity_id=entity_id,
        before=before,
    )
