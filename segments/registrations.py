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
