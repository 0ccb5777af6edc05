"""Demo data of event segments (issue 13): shoppers' profiles, a day of their events, four segments and a
trigger campaign, so `make up` shows live members, history and sends instead of an empty page.

Segments, events and the campaign go through the services the API calls (segment_create, ingest_events,
campaign_save; profiles are bulk-written, then their identity keys synced), so the demo's members are evaluated by the real evaluator. Idempotent: an org that has any
segment is left alone. The shoppers' emails are people of the org's demo CRM import, so the builder's
`segment` field finds them among the audience records.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from django.utils import timezone
from django_tenants.utils import schema_context

from segments import identity
from segments.models import Segment, TriggerCampaign, UserProfile
from segments.services import campaign_save, ingest_events, segment_create

SHOPPERS = 120
# people of the demo CRM import (audiences/demo.py): person n has Person{n}@Company{n % 600}.com unless n % 9 == 0
DEMO_PEOPLE = [n for n in range(1, 400) if n % 9 and n % 97 != 13][:SHOPPERS]
# the org's CRM people are offset (audiences.demo.DEMO_IMPORTS: globex's start at 50,000)
PEOPLE_OFFSET = {"acme": 0, "globex": 50_000}
BATCH = 1000  # at most SEGMENTS_EVALUATE_INLINE_MAX: each batch is evaluated before the next


def _shopper_id(slug: str, person: int) -> str:
    return f"{slug}-shopper-{person}"


def _events(slug: str, people: list[int], now: Any) -> list[dict[str, Any]]:
    """A deterministic day: each shopper browses, some add to cart, a few order often (some in the last hour)."""
    rng = random.Random(f"p360-demo-{slug}")  # demo data, not security
    events: list[dict[str, Any]] = []
    for person in people:
        user = _shopper_id(slug, person)
        keen = rng.random()
        plan = [("clicks", rng.randint(2, 8)), ("addToCart", int(keen * 5)), ("orders", int(keen * keen * 7))]
        for event_type, times in plan:
            for _ in range(times):
                # the keenest shoppers' orders fall in the last hour, so "Hot right now" has members for a while
                recent = event_type == "orders" and keen > 0.8
                minutes_ago = rng.uniform(1, 55) if recent else rng.uniform(1, 23 * 60)
                attributes: dict[str, Any] = {}
                if event_type in ("addToCart", "orders"):
                    attributes = {"value": round(rng.uniform(15, 180), 2), "currency": "USD"}
                events.append(
                    {
                        "event_id": f"demo-{slug}-{len(events)}",
                        "user_id": user,
                        "event_type": event_type,
                        "timestamp": (now - timedelta(minutes=minutes_ago)).isoformat(),
                        "attributes": attributes,
                    }
                )
    events.sort(key=lambda event: event["timestamp"])
    return events


def _segments() -> list[Segment]:
    frequent = segment_create(
        data={
            "name": "Frequent buyers (3+ orders today)",
            "description": "Demo: at least three orders in the last 24 hours.",
            "type": "independent",
            "rule": {
                "event_type": "orders",
                "attribute": "count",
                "operator": "gte",
                "value": 3,
                "window_minutes": 1440,
            },
        },
        actor=None,
    )
    carts = segment_create(
        data={
            "name": "Big carts ($200+ in 24 h)",
            "description": "Demo: the value added to cart in the last 24 hours sums to 200 or more.",
            "type": "independent",
            "rule": {
                "event_type": "addToCart",
                "attribute": "sum",
                "property": "value",
                "operator": "gte",
                "value": 200,
                "window_minutes": 1440,
            },
        },
        actor=None,
    )
    hot = segment_create(
        data={
            "name": "Hot right now (2+ orders in 60 min)",
            "description": "Demo: members leave as the hour slides past their orders, with no new event.",
            "type": "independent",
            "rule": {"event_type": "orders", "attribute": "count", "operator": "gte", "value": 2, "window_minutes": 60},
        },
        actor=None,
    )
    both = segment_create(
        data={
            "name": "Frequent buyers with big carts",
            "description": "Demo: a derived segment (AND of two others).",
            "type": "derived",
            "expression": {"op": "and", "children": [{"segment": frequent.pk}, {"segment": carts.pk}]},
        },
        actor=None,
    )
    return [frequent, carts, hot, both]


def load_segments_demo(orgs: list[Any]) -> dict[str, int]:
    created = {"segments": 0, "events": 0, "profiles": 0}
    now = timezone.now()
    for org in orgs:
        offset = PEOPLE_OFFSET.get(org.slug)
        if offset is None:
            continue
        with schema_context(org.schema_name):
            if Segment.objects.exists():
                continue
            people = [offset + n for n in DEMO_PEOPLE]
            # one bulk write and one key sync (profile_put per shopper committed and audited 120 times: 4 s)
            UserProfile.objects.bulk_create(
                [
                    UserProfile(
                        user_id=_shopper_id(org.slug, person),
                        email=f"person{person}@company{person % 600}.com",
                        attributes={
                            "first_name": f"First{person % 300}",
                            "tier": "gold" if person % 7 == 0 else "standard",
                        },
                    )
                    for person in people
                ],
                ignore_conflicts=True,
            )
            identity.sync_all()
            created["profiles"] += len(people)
            segments = _segments()
            created["segments"] += len(segments)
            # the campaign before the events, so the entries it fires on are sent (console mail backend in dev)
            campaign_save(
                campaign=TriggerCampaign(
                    name="Thank frequent buyers",
                    segment=segments[0],
                    channel=TriggerCampaign.Channel.EMAIL,
                    subject="Thanks for shopping with us, {{first_name}}",
                    template="Hi {{first_name}}, three orders in a day: here is free shipping on the next one.",
                ),
                actor=None,
            )
            events = _events(org.slug, people, now)
            for start in range(0, len(events), BATCH):
                ingest_events(raws=events[start : start + BATCH], now=now)
            created["events"] += len(events)
    return created
