"""Writes of audience insights: audit rows for views and exports, and the exclusion helper."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from audiences.insights.similarity import exclusion_tree
from audiences.models import Audience
from p360.core.audit.models import AuditEvent
from p360.core.audit.services import record
from tenants.services import ServiceError

if TYPE_CHECKING:
    from tenants.models import Organization, User

VIEW_AUDIT_EVERY = dt.timedelta(hours=1)  # one "viewed" row per person and audience per hour, not per page load


def audience_viewed(*, audience: Audience, actor: User | None, org: Organization, surface: str) -> bool:
    """Record that someone looked at the audience's insights; returns whether a row was written."""
    if actor is None or not actor.is_authenticated:
        return False
    recent = AuditEvent.objects.filter(
        org_id=org.pk,
        actor_id=actor.pk,
        action="audience.viewed",
        entity_type="audiences.audience",
        entity_id=str(audience.pk),
        created_at__gte=timezone.now() - VIEW_AUDIT_EVERY,
    ).exists()
    if recent:
        return False
    record(action="audience.viewed", actor=actor, org=org, entity=audience, after={"surface": surface})
    return True


def audience_exported(
    *, audience: Audience, actor: User | None, org: Organization, what: str, fmt: str, rows: int
) -> None:
    record(
        action="audience.exported",
        actor=actor,
        org=org,
        entity=audience,
        after={"what": what, "format": fmt, "rows": rows},
    )


def exclusion_create(
    *, base: Audience, exclude: list[int], actor: User | None, name: str = "", save: bool = True
) -> dict[str, Any]:
    """ "Remove members of X": the tree `audience in [base] and not audience in [X...]`; saved as a built audience
    when `save` (named "<base> without <X>" unless a name is given). Raises ServiceError / TreeError."""
    from audiences.saved import built_audience_create

    exclude = [int(i) for i in dict.fromkeys(exclude)]
    if not exclude:
        raise ServiceError("choose at least one audience to remove")
    if base.pk in exclude:
        raise ServiceError("an audience cannot exclude itself")
    names = dict(Audience.objects.filter(pk__in=exclude).values_list("id", "name"))
    missing = [i for i in exclude if i not in names]
    if missing:
        raise ServiceError(f"no audience with id {missing[0]} in this organisation")
    tree = exclusion_tree(base.pk, exclude)
    result: dict[str, Any] = {"tree": tree, "audience": None}
    if save:
        name = (name or "").strip() or f"{base.name} without {', '.join(names[i] for i in exclude)}"[:200]
        audience = built_audience_create(
            name=name,
            tree=tree,
            actor=actor,
            description=f"Members of {base.name} who are not in {', '.join(names[i] for i in exclude)}.",
        )
        result["audience"] = audience
    return result
