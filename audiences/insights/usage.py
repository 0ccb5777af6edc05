"""Where an audience is used, and what it is built from (lineage both ways), plus who touched it (audit log).

"Used by" comes from the core registry (`p360.core.registry.register_audience_usage`), where every app declares
its usages; audiences registers campaigns and derived audiences (audiences/registrations.py), activation its
destinations, deliveries, TTD segments and ICP seed:

    from p360.core.registry import AudienceUsage, register_audience_usage

    def deliveries(audience):               # e.g. activation/registrations.py (from ActivationConfig.ready())
        return [AudienceUsage(kind="delivery", id=d.pk, name=str(d), detail="LiveRamp, 3 days ago")
                for d in Delivery.objects.filter(audience=audience)]

    register_audience_usage(key="activation", order=100, provider=deliveries)
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from audiences.lineage import parent_ids
from audiences.models import Audience, AudienceKind
from p360.core import registry
from p360.core.registry import AudienceUsage

logger = logging.getLogger(__name__)


def campaigns(audience: Audience) -> list[AudienceUsage]:
    return [
        AudienceUsage(kind="campaign", id=c.pk, name=c.name, detail=c.get_status_display())
        for c in audience.campaigns.order_by("name")[:200]  # type: ignore[attr-defined]
    ]


def derived(audience: Audience) -> list[AudienceUsage]:
    """Saved audiences whose tree references this one (`audience in [id]`, including under NOT): one query on
    the GIN-indexed `parent_ids` (kept by `Audience.save`), not a scan of every built audience's tree."""
    rows = (
        Audience.objects.filter(kind=AudienceKind.BUILT, parent_ids__contains=[audience.pk])
        .exclude(pk=audience.pk)
        .order_by("name")
        .values_list("id", "name")[:500]
    )
    return [
        AudienceUsage(kind="audience", id=pk, name=name, detail="its definition references this audience")
        for pk, name in rows
    ]


def used_by(audience: Audience) -> list[dict[str, Any]]:
    """Everything that uses the audience, from every registered provider (a failing provider is skipped)."""
    found: list[dict[str, Any]] = []
    for entry in registry.audience_usage_providers():
        try:
            found.extend({**asdict(u), "provider": entry.key} for u in entry.provider(audience))
        except Exception:  # one app's bug must not hide the others' usages
            logger.exception("audience usage provider %s failed", entry.key)
    return found


def built_from(audience: Audience) -> list[dict[str, Any]]:
    """What the audience comes from: the audiences its tree references, or the files imported into it."""
    if audience.kind == AudienceKind.BUILT:
        ids = parent_ids(audience.tree)
        names = dict(Audience.objects.filter(pk__in=ids).values_list("id", "name"))
        return [
            {"kind": "audience", "id": i, "name": names.get(i, f"deleted audience {i}"), "url": "", "detail": ""}
            for i in ids
        ]
    return [
        {
            "kind": "import",
            "id": imp.pk,
            "name": imp.source_name,
            "url": "",
            "detail": f"{imp.rows_loaded:,} rows loaded {imp.created_at:%Y-%m-%d}",
        }
        for imp in audience.imports.filter(status="succeeded").order_by("-created_at")[:20]  # type: ignore[attr-defined]
    ]


def activity(audience: Audience, org_id: int, *, limit: int = 50) -> list[dict[str, Any]]:
    """Who viewed, exported or changed the audience, newest first, from the audit log."""
    from django.db.models import Q

    from p360.core.audit.models import AuditEvent

    # The audience's own events, and those of the files imported into it (an import changes its data).
    import_ids = [str(pk) for pk in audience.imports.values_list("pk", flat=True)[:500]]  # type: ignore[attr-defined]
    events = AuditEvent.objects.filter(
        Q(entity_type="audiences.audience", entity_id=str(audience.pk))
        | Q(entity_type="audiences.audienceimport", entity_id__in=import_ids),
        org_id=org_id,
    ).order_by("-created_at", "-id")[:limit]
    return [
        {
            "action": e.action,
            "verb": e.action.replace("audience_import.", "import ").split(".", 1)[-1],
            "actor": e.actor_email or "system",
            "at": e.created_at.isoformat(),
            "details": e.after or {},
        }
        for e in events
    ]
