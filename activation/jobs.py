"""Job kinds of the activation app (found by p360.core.jobs.services.job_kinds) and the scheduled entry points."""

from __future__ import annotations

from typing import Any

from p360.core.jobs.services import JobContext, JobError, job_handler


@job_handler("activation.uid2_map", title="UID2 mapping")
def uid2_map_job(ctx: JobContext, audience_id: int | None = None, due_only: bool = False) -> dict[str, Any]:
    from activation.identities import map_identities, refresh_stale_match_stats
    from activation.uid2 import Uid2Error, Uid2Settings
    from audiences.models import Audience

    audience = None
    if audience_id is not None:
        audience = Audience.objects.filter(pk=audience_id).first()
        if audience is None:
            raise JobError(f"unknown audience {audience_id}")
    try:
        conf = Uid2Settings.from_settings()
        result = map_identities(audience=audience, due_only=due_only, conf=conf, progress=ctx.progress)
    except Uid2Error as exc:
        raise JobError(str(exc)) from exc
    refresh_stale_match_stats()  # the identities changed: the stored figures of every viewed audience, here (a job)
    ctx.log(
        f"UID2: {result['mapped']} mapped, {result['opted_out']} opted out, {result['unmapped']} unmapped, "
        f"match rate {result['match_rate']:.1%}"
    )
    return result


@job_handler("activation.match_stats", title="UID2 match figures")
def match_stats_job(ctx: JobContext, audience_id: int | None = None) -> dict[str, Any]:
    """Recount stored UID2 match figures that went stale (one audience, or all of the org's when `audience_id` is
    None), so the audience page shows them without counting (queued by the page and after records or identities
    change)."""
    from activation.identities import refresh_stale_match_stats

    counted = refresh_stale_match_stats(audience_id)
    ctx.log(f"UID2 match figures recounted for {counted} audience(s)")
    return {"audiences": counted}


@job_handler("activation.deliver", title="Audience delivery")
def deliver_job(ctx: JobContext, delivery_id: int) -> dict[str, Any]:
    from activation.delivery import DeliveryFailed, run_delivery

    try:
        return run_delivery(delivery_id, ctx)
    except DeliveryFailed as exc:
        raise JobError(str(exc)) from exc


@job_handler("activation.icp_seeds", title="ICP seed refresh")
def icp_seed_job(ctx: JobContext) -> dict[str, Any]:
    from activation.ttd import refresh_seeds

    return refresh_seeds(ctx)


def _each_org(kind: str, params: dict[str, Any], *, when: Any = None) -> int:
    from django_tenants.utils import schema_context

    from p360.core.jobs.services import job_start
    from tenants.models import Organization

    started = 0
    for org in Organization.objects.active():
        with schema_context(org.schema_name):
            wanted = when() if when is not None else True
        if wanted:
            job_start(kind=kind, org=org, params=params, max_attempts=3)
            started += 1
    return started


def start_uid2_refresh() -> int:
    """Daily (public schema): re-map only the due identities of every org."""
    from django.conf import settings

    if not settings.P360_UID2_API_KEY:
        return 0
    return _each_org("activation.uid2_map", {"due_only": True})


def start_due_deliveries() -> int:
    """Daily (public schema): every org whose cadence says a delivery is due gets one per destination."""
    from django_tenants.utils import schema_context

    from activation.delivery import due_destinations, start_delivery
    from tenants.models import Organization

    started = 0
    for org in Organization.objects.active():
        with schema_context(org.schema_name):
            for destination in due_destinations():
                start_delivery(destination=destination, actor=None, dry_run=False, org=org)
                started += 1
    return started


def start_icp_seed_refresh() -> int:
    """Monthly (public schema): re-export every org's ICP seeds."""
    from activation.models import IcpSeed

    return _each_org("activation.icp_seeds", {}, when=lambda: IcpSeed.objects.exists())
