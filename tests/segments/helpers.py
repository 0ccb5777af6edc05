"""Helpers for the event segment tests: posting events and segments through the real API."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from django.test import Client

_ids = itertools.count(1)


def api(org: str = "acme") -> str:
    return f"/o/{org}/api/v1"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def ago(**kwargs: float) -> datetime:
    return datetime.now(UTC) - timedelta(**kwargs)


def event(user: str, event_type: str = "orders", when: datetime | None = None, **attributes: Any) -> dict[str, Any]:
    return {
        "event_id": f"e{next(_ids)}-{user}",
        "user_id": user,
        "event_type": event_type,
        "timestamp": iso(when or ago(seconds=1)),
        "attributes": attributes,
    }


def post_events(client: Client, events: list[dict[str, Any]] | dict[str, Any], org: str = "acme") -> Any:
    body = events if isinstance(events, dict) else {"events": events}
    return client.post(f"{api(org)}/events", body, content_type="application/json")


def independent(
    name: str,
    event_type: str = "orders",
    attribute: str = "count",
    operator: str = "gt",
    value: float = 2,
    window: int = 60,
    prop: str | None = None,
) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "event_type": event_type,
        "attribute": attribute,
        "operator": operator,
        "value": value,
        "window_minutes": window,
    }
    if prop:
        rule["property"] = prop
    return {"name": name, "type": "independent", "rule": rule}


def create_segment(client: Client, body: dict[str, Any], org: str = "acme") -> Any:
    return client.post(f"{api(org)}/segments", body, content_type="application/json")


def user_segments(client: Client, user: str, org: str = "acme") -> list[str]:
    response = client.get(f"{api(org)}/users/{user}/segments")
    assert response.status_code == 200, response.content
    return sorted(s["name"] for s in response.json()["segments"])


def schema_of(slug: str) -> str:
    from tenants.models import Organization

    return Organization.objects.get(slug=slug).schema_name


def drop_committed_org(org: Any) -> None:
    """Tear down an org a module fixture committed (subprocesses had to see it): its domains, then its schema."""
    from django.db import connection

    from tenants.models import Organization

    connection.set_schema_to_public()  # type: ignore[attr-defined]
    fresh = Organization.objects.get(pk=org.pk)
    fresh.domains.all().delete()
    fresh.delete(force_drop=True)


RuleRow = tuple[str, str, str, str, str, float, int]  # name, event_type, attribute, property, operator, value, window


@contextmanager
def committed_org_with_rules(prefix: str, name: str, rules: Sequence[RuleRow]) -> Iterator[Any]:
    """An org committed with one independent segment per rule row (for tests whose subprocesses must see it)."""
    from django.db import connection
    from django_tenants.utils import schema_context

    from segments.services import segment_create
    from tenants.services import org_create

    token = secrets.token_hex(3)
    org = org_create(slug=f"{prefix}-{token}", name=name, ttd_advertiser_id=f"{prefix}{token}")
    with schema_context(org.schema_name):
        for segment, event_type, attribute, prop, operator, value, window in rules:
            rule = {
                "event_type": event_type,
                "attribute": attribute,
                "property": prop,
                "operator": operator,
                "value": value,
                "window_minutes": window,
            }
            segment_create(data={"name": segment, "type": "independent", "rule": rule}, actor=None)
    connection.set_schema_to_public()  # type: ignore[attr-defined]
    try:
        yield org
    finally:
        drop_committed_org(org)


def rules_and_their_negation(client: Client, bodies: Sequence[dict[str, Any]], negated: str) -> dict[str, int]:
    """Create independent segments from `bodies` and a derived `not <negated>` over one of them: the shared set-up
    of the tests that run one claim sequence through two evaluator paths. Returns name -> id."""
    ids: dict[str, int] = {}
    for body in bodies:
        response = create_segment(client, body)
        assert response.status_code == 201, response.content
        ids[body["name"]] = response.json()["id"]
    expression = {"op": "not", "children": [{"segment": ids[negated]}]}
    derived = create_segment(client, {"name": f"not {negated}", "type": "derived", "expression": expression})
    assert derived.status_code == 201, derived.content
    return ids


def empty_event_tables(schema: str) -> None:
    """Each run of an equality test starts from no events, states, members or ledger (the org and its rules stay)."""
    from django.db import connection
    from django_tenants.utils import schema_context

    with schema_context(schema), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the test's transaction holds deferred checks
        cursor.execute(
            "TRUNCATE segments_event, segments_event_id, segments_windowstate, segments_membership, "
            "segments_pendingbatch, segments_transition, segments_userprofile CASCADE"
        )


def decisions() -> dict[str, list[tuple[Any, ...]]]:
    """What an evaluation decided, in the current schema: the ledger (with triggers and reasons) and the members."""
    from segments.models import Membership, Transition

    return {
        "ledger": sorted(Transition.objects.values_list("segment__name", "user_id", "kind", "event_id", "reason")),
        "members": sorted(Membership.objects.values_list("segment__name", "user_id")),
    }
