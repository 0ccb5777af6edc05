"""Where an audience is used, and what it is built from (lineage both ways), plus who touched it (audit log).

Other apps declare their usages through a small registry instead of this module importing them:

    from audiences.insights.usage import Usage, register_usage_provider

    def deliveries(audience):               # e.g. activation/registrations.py (from ActivationConfig.ready())
        return [Usage(kind="delivery", id=d.pk, name=str(d), url=f"...", detail="LiveRamp, 3 days ago")
                for d in Delivery.objects.filter(audience=audience)]

    register_usage_provider("activation", deliveries)

A provider receives the audience (inside its org's schema) and returns `Usage` rows of things that use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from audiences.models import Audience, AudienceKind


@dataclass(frozen=True)
class Usage:
    kind: str  # campaign | delivery | audience | import | ...
    id: int | str
    name: str
    url: str = ""
    detail: str = ""


UsageProvider = Callable[[Audience], list[Usage]]
_providers: dict[str, UsageProvider] = {}


def register_usage_provider(name: str, provider: UsageProvider) -> None:
    """Declare a kind of usage (idempotent by name: re-registering replaces)."""
    _providers[name] = provider


def unregister_usage_provider(name: str) -> None:
    _providers.pop(name, None)


def _audience_ids_in(tree: Any) -> Iterator[int]:
    stack = [tree]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if node.get("field") == "audience" and isinstance(node.get("value"), list):
            yield from (v for v in node["value"] if isinstance(v, int) and not isinstance(v, bool))
        children = node.get("children")
        if isinstance(children, list):
            stack.extend(children)


def _campaigns(audience: Audience) -> list[Usage]:
    return [
        Usage(kind="campaign", id=c.pk, name=c.name, detail=c.get_status_display())
        for c in audience.campaigns.order_by("name")[:200]  # type: ignore[attr-defined]
    ]


def _derived(audience: Audience) -> list[Usage]:
    """Saved audiences whose tree references this one (`audience in [id]`, including under NOT)."""
    rows = Audience.objects.filter(kind=AudienceKind.BUILT, tree__isnull=False).exclude(pk=audience.pk)
    return [
        Usage(kind="audience", id=pk, name=name, detail="its definition references this audience")
        for pk, name, tree in rows.values_list("id", "name", "tree")
        if audience.pk in set(_audience_ids_in(tree))
    ]


register_usage_provider("campaigns", _campaigns)
register_usage_provider("derived_audiences", _derived)


def used_by(audience: Audience) -> list[dict[str, Any]]:
    """Everything that uses the audience, from every registered provider (a failing provider is skipped)."""
    found: list[dict[str, Any]] = []
    for name, provider in list(_providers.items()):
        try:
            found.extend({**asdict(u), "provider": name} for u in provider(audience))
        except Exception:  # one app's bug must not hide the others' usages
            import logging

            logging.getLogger(__name__).exception("usage provider %s failed", name)
    return found


def built_from(audience: Audience) -> list[dict[str, Any]]:
    """What the audience comes from: the audiences its tree references, or the files imported into it."""
    if audience.kind == AudienceKind.BUILT:
        ids = sorted(set(_audience_ids_in(audience.tree)))
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
