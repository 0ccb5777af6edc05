"""What segments contributes to the project layer (admin navigation, schedules).

Imported from SegmentsConfig.ready(); see p360/core/registry.py.
"""

from __future__ import annotations

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
