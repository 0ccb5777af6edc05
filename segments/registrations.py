"""What segments contributes to the project layer (admin navigation, schedules).

Imported from SegmentsConfig.ready(); see p360/core/registry.py.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.http import HttpRequest

from p360.core import registry

# org admin sidebar, "Data" group: after the core domain apps (200+ is the new-app range)
for order, title, icon, model in (
    (200, "Event segments", "join_inner", "segment"),
    (210, "Trigger campaigns", "campaign", "triggercampaign"),
    (220, "Trigger sends", "send", "send"),
):
    registry.register_nav(
        site="org",
        group="Data",
        title=title,
        icon=icon,
        url_name=f"admin:segments_{model}_changelist",
        permission=f"segments.view_{model}",
        order=order,
    )

# window timers and trigger sends every minute (a safety net for the tight-loop `segments_timers` and
# `segments_deliver` workers), and the daily drop of event partitions past each org's retention
registry.register_schedule(name="p360: segment timers", func="segments.tasks.run_timers_all_orgs", minutes=1)
registry.register_schedule(name="p360: segment sends", func="segments.tasks.deliver_all_orgs", minutes=1)
registry.register_schedule(
    name="p360: segment event retention", func="segments.tasks.retention_all_orgs", minutes=24 * 60
)

# The audience builder's `segment` field (issue 13): audiences never imports segments; it asks through the registry.
# The identity rule (which records a segment's users are) is in segments/identity.py.


def _register_builder_field() -> None:
    from segments import identity

    registry.register_builder_field(
        registry.BuilderField(
            name="segment",
            label="Event segment",
            group="Event segments",
            description="People whose email, phone or device id belongs to a user currently in any of the listed "
            "event segments (matched on the normalised keys, as imports normalise them).",
            ids=identity.segment_ids,
            choices=identity.segment_choices,
            keys=identity.member_keys,
            keys_sql=identity.member_keys_sql,
            version=identity.version,
        )
    )


_register_builder_field()


# --- Saved audiences follow their segments (issue 13): segments/audience_refresh.py ----------------------------------
registry.register_schedule(
    name="p360: segment audience refresh", func="segments.audience_refresh.start_due_all_orgs", minutes=1
)


def _follow_panel(request: Any, audience: Any) -> str:
    """The audience page's line: which segments it follows, when it was last refreshed, a pending refresh."""
    from django.template.loader import render_to_string

    from segments.audience_refresh import following

    data = following(audience)
    if data is None:
        return ""
    org = getattr(request, "org", None)
    return render_to_string("segments/_audience_panel.html", {"f": data, "org": org}, request=request)


registry.register_audience_panel(key="segments", order=50, render=_follow_panel)


def _audience_saved(sender: Any, instance: Any, created: bool, update_fields: Any = None, **kwargs: Any) -> None:
    from segments.audience_refresh import audience_saved

    follows_changed = created or update_fields is None or "segment_ids" in update_fields
    audience_saved(instance, follows_changed=follows_changed)


def _audience_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    from segments.audience_refresh import cache_key, forget

    forget(cache_key())


def _connect_audience_signals() -> None:
    from audiences.models import Audience, BuiltAudience

    for model in (Audience, BuiltAudience):  # a proxy's saves are sent with the proxy as sender
        uid = model._meta.label_lower
        post_save.connect(_audience_saved, sender=model, dispatch_uid=f"segments.audience_saved:{uid}")
        post_delete.connect(_audience_deleted, sender=model, dispatch_uid=f"segments.audience_deleted:{uid}")


_connect_audience_signals()


def _segments_demo(orgs: list[Any], created: dict[str, int]) -> dict[str, int]:
    from segments.demo import load_segments_demo

    return load_segments_demo(orgs)


# after the audiences' CRM imports (order 100): the demo shoppers are people of those imports
registry.register_demo_loader(key="segments", order=700, load=_segments_demo)


def _home_tile(request: HttpRequest) -> dict[str, Any]:
    """The marketer home's figure card: active segments and how many users are in one right now."""
    from segments.models import Segment
    from segments.selectors import users_in_segments

    active = Segment.objects.filter(active=True).count()
    users, more = users_in_segments()
    return {
        "home_kpis": [
            {
                "label": "Event segments",
                "value": active,
                "note": f"{users:,}{'+' if more else ''} user{'s' if users != 1 else ''} in a segment now"
                if active
                else "none active yet",
                "href": f"/o/{request.org.slug}/segments/",  # type: ignore[attr-defined]
            }
        ]
    }


registry.register_dashboard_tile(site="home", key="segments", order=60, build=_home_tile)
