"""What activation contributes to the project layer (org admin navigation, global dashboard card and KPI, cron
schedules) and to the audience page (its Activation panel). Imported from ActivationConfig.ready(); see
p360/core/registry.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.template.loader import render_to_string

from activation.admin_ui import cross_org_deliveries, deliveries_kpi
from activation.identities import request_match_refresh
from activation.models import MatchStats
from activation.selectors import audience_activation, audience_usages
from p360.core import registry
from tenants.access import orgs_visible_to

# org sidebar, "Data" group, after the core apps (audiences 10-50 ... client settings 120)
for order, title, icon, model in (
    (200, "Destinations", "send", "destination"),
    (210, "Deliveries", "local_shipping", "delivery"),
    (220, "Delivery settings", "settings", "deliveryconfig"),
    (230, "UID2 identities", "fingerprint", "uid2identity"),
    (240, "TTD segments", "hub", "ttdmember"),
    (250, "ICP seeds", "spa", "icpseed"),
):
    registry.register_nav(
        site="org",
        group="Data",
        title=title,
        icon=icon,
        url_name=f"admin:activation_{model}_changelist",
        permission=f"activation.view_{model}",
        order=order,
    )


def _global_tile(request: HttpRequest) -> dict[str, Any]:
    """Deliveries across the visible orgs (the dashboard's `activation_deliveries` card) and the failures KPI."""
    deliveries = cross_org_deliveries(orgs_visible_to(request.user))
    return {"activation_deliveries": deliveries, "kpis": [deliveries_kpi(deliveries)]}


registry.register_dashboard_tile(site="global", key="activation", order=60, build=_global_tile)


def _cron(setting: str) -> Callable[[], str]:
    return lambda: getattr(settings, setting)  # read late: tests and deployments override the setting


# deliveries are checked daily (each org's cadence decides), UID2 refresh of due identities, monthly ICP seeds
for name, func, setting in (
    ("p360: due deliveries", "activation.jobs.start_due_deliveries", "P360_DELIVERY_CRON"),
    ("p360: UID2 refresh (due only)", "activation.jobs.start_uid2_refresh", "P360_UID2_REFRESH_CRON"),
    ("p360: ICP seed refresh", "activation.jobs.start_icp_seed_refresh", "P360_ICP_SEED_CRON"),
):
    registry.register_schedule(name=name, func=func, cron=_cron(setting))


def _audience_panel(request: HttpRequest | None, audience: Any) -> str:
    """The audience page's Activation panel (issue 12): match rate, destinations, last and next delivery."""
    data = audience_activation(audience)
    org = getattr(request, "org", None)
    context = {
        "a": data,
        "match_percent": f"{100 * data['match_rate']:.1f}%" if data["match_rate"] is not None else "",
        "activation_base": f"/o/{org.slug}/activation/" if org is not None else "",
    }
    return render_to_string("activation/_panel.html", context, request=request)


registry.register_audience_panel(key="activation", order=100, render=_audience_panel)

# the audience's lineage ("used by"): destinations, deliveries, TTD segments, ICP seed
registry.register_audience_usage(key="activation", order=100, provider=audience_usages)


def _activation_demo(orgs: list[Any], created: dict[str, int]) -> dict[str, int]:
    from activation.demo import load_activation_demo

    return load_activation_demo(orgs)


# after the builder's demo audiences (order 500), which the destination carries
registry.register_demo_loader(key="activation", order=650, load=_activation_demo)


def _records_changed(audience_id: int) -> None:
    """An audience's records changed: count its match figures in a job (after the commit), so the next view of its
    page reads them instead of showing "counting…".

    Always after an import or a restore (session 12: a new audience's first view showed "counting…"; the count is
    seconds at 10M records, beside an import that takes far longer), and after a built audience's first members
    (saved in the builder, then opened). A later refresh of a built audience recounts only figures someone looked at:
    the daily schedule refreshes every built audience, and one nobody opens is counted on its first view."""
    from audiences.models import Audience, AudienceCount, AudienceKind

    if MatchStats.objects.filter(audience_id=audience_id).exists():
        request_match_refresh(audience_id)
        return
    kind = Audience.objects.filter(pk=audience_id).values_list("kind", flat=True).first()
    if kind == AudienceKind.IMPORTED or (
        kind == AudienceKind.BUILT and AudienceCount.objects.filter(audience_id=audience_id).count() <= 1
    ):
        request_match_refresh(audience_id)


registry.register_hook("audience_records_changed", key="activation.match_stats", fn=_records_changed)


def _home_tile(request: HttpRequest) -> dict[str, Any]:
    """The marketer home's figure card: destinations switched on and when the next delivery is due."""
    from django.utils import timezone
    from django.utils.formats import date_format

    from activation.delivery import next_delivery_at
    from activation.models import Destination

    destinations = list(Destination.objects.all())
    enabled = [d for d in destinations if d.enabled]
    due = [at for at in (next_delivery_at(d) for d in enabled) if at is not None]
    if not destinations:
        note = "none set up yet"
    elif not due:
        note = "deliveries are off"
    else:
        when = min(due)
        note = "next delivery due now" if when <= timezone.now() else f"next delivery {date_format(when, 'j M')}"
    return {
        "home_kpis": [
            {
                "label": "Destinations",
                "value": len(enabled),
                "note": note if enabled or not destinations else f"{len(destinations)} switched off",
                "href": f"/o/{request.org.slug}/activation/",  # type: ignore[attr-defined]
            }
        ]
    }


registry.register_dashboard_tile(site="home", key="activation", order=70, build=_home_tile)
