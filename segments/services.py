"""Segment writes: definitions, ingestion, profiles, trigger campaigns. Each write is audited."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from p360.core.audit.services import record
from p360.core.tenancy import current_org
from segments import audience_refresh
from segments import events as events_mod
from segments import rules as rules_mod
from segments.evaluator import (
    Outcome,
    evaluate_derived_all,
    evaluate_pending,
    evaluate_segment_users,
    wake_evaluator,
)
from segments.models import (
    BUILTIN_EVENT_TYPES,
    EventType,
    Segment,
    SegmentDependency,
    SegmentVersion,
    TriggerCampaign,
    UserProfile,
)
from segments.triggers import org_settings

logger = logging.getLogger(__name__)
MAX_EXPRESSION_DEPTH = 8
MAX_EXPRESSION_NODES = 200


class SegmentError(ValueError):
    """Bad input for a segment; `code` and `field` go into the API's error body.

    `reason` names the error itself (one per check: `value_not_number`, `cycle`, ...) so a page can word it
    for its reader without matching the message's phrases (segments.views._PAGE_WORDS). It never reaches the
    API's body: the API's `code` stays the broad one it always was (`invalid`, `duplicate`, ...) and its
    messages are unchanged (CONTRACT).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid",
        field: str = "",
        status: int = 400,
        reason: str = "",
        **extra: Any,
    ):
        super().__init__(message)
        self.code = code
        self.field = field
        self.status = status
        self.reason = reason or code
        self.extra = extra


# --- Definitions ---------------------------------------------------------------------------------


def _clean_rule(rule: Any) -> dict[str, Any]:
    if not isinstance(rule, dict):
        raise SegmentError("rule must be an object", field="rule", reason="rule_not_object")
    data = {
        {"eventType": "event_type", "windowMinutes": "window_minutes"}.get(key, key): value
        for key, value in rule.items()
    }
    event_type = data.get("event_type")
    types = events_mod.allowed_event_types()
    if not isinstance(event_type, str) or event_type not in types:
        raise SegmentError(
            f"rule.event_type must be one of {', '.join(sorted(types))}",
            field="rule.event_type",
            reason="event_type_unknown",
        )
    attribute = str(data.get("attribute", "")).lower()
    if attribute not in Segment.Attribute.values:
        raise SegmentError(
            f"rule.attribute must be one of {', '.join(Segment.Attribute.values)}",
            field="rule.attribute",
            reason="attribute_unknown",
        )
    operator = str(data.get("operator", "")).lower()
    if operator not in Segment.Operator.values:
        raise SegmentError(
            f"rule.operator must be one of {', '.join(Segment.Operator.values)}",
            field="rule.operator",
            reason="operator_unknown",
        )
    raw_value = data.get("value")
    if isinstance(raw_value, bool) or not isinstance(raw_value, int | float | str):
        raise SegmentError("rule.value must be a number", field="rule.value", reason="value_not_number")
    try:
        value = Decimal(str(raw_value))
    except InvalidOperation as exc:
        raise SegmentError("rule.value must be a number", field="rule.value", reason="value_not_number") from exc
    if not value.is_finite() or abs(value) >= Decimal("1e15"):
        raise SegmentError(
            "rule.value must be a finite number below 1e15", field="rule.value", reason="value_out_of_range"
        )
    window = data.get("window_minutes")
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 1440:
        raise SegmentError(
            "rule.window_minutes must be a whole number from 1 to 1440",
            field="rule.window_minutes",
            reason="window_out_of_range",
        )
    prop = data.get("property") or "value"
    if not isinstance(prop, str) or len(prop) > 100:
        raise SegmentError("rule.property must be an attribute name", field="rule.property", reason="property_invalid")
    if attribute == "count":
        prop = "value"
    return {
        "event_type": event_type,
        "attribute": attribute,
        "property": prop,
        "operator": operator,
        "value": value,
        "window_minutes": window,
    }


def _clean_expression(expression: Any, depth: int = 0, counter: list[int] | None = None) -> dict[str, Any]:
    counter = counter if counter is not None else [0]
    counter[0] += 1
    if depth > MAX_EXPRESSION_DEPTH or counter[0] > MAX_EXPRESSION_NODES:
        raise SegmentError("expression is too deep or too large", field="expression", reason="expression_too_large")
    if not isinstance(expression, dict):
        raise SegmentError("expression must be an object", field="expression", reason="expression_not_object")
    op = str(expression.get("op", "")).lower()
    if op not in ("and", "or", "not"):
        raise SegmentError("expression.op must be and, or or not", field="expression.op", reason="op_unknown")
    children = expression.get("children")
    if not isinstance(children, list) or not children:
        raise SegmentError(
            "expression.children must be a non-empty list", field="expression.children", reason="children_empty"
        )
    if op == "not" and len(children) != 1:
        raise SegmentError("not takes exactly one child", field="expression.children", reason="not_one_child")
    cleaned: list[dict[str, Any]] = []
    for child in children:
        if isinstance(child, dict) and "segment" in child:
            ref = child["segment"]
            if isinstance(ref, bool) or not isinstance(ref, int | str) or not str(ref).isdigit() or len(str(ref)) > 18:
                raise SegmentError(
                    "a child's segment must be a segment id", field="expression.children", reason="child_not_segment_id"
                )
            cleaned.append({"segment": int(ref)})
        else:
            cleaned.append(_clean_expression(child, depth + 1, counter))
    return {"op": op, "children": cleaned}


def _check_references(expression: dict[str, Any], segment_id: int | None) -> set[int]:
    children = rules_mod.expression_children(expression)
    known = set(Segment.objects.filter(pk__in=children).values_list("pk", flat=True))
    unknown = sorted(children - known)
    if unknown:
        raise SegmentError(f"unknown segment {unknown[0]}", code="unknown_segment", field="expression", unknown=unknown)
    if segment_id is not None:
        # A cycle: the new expression reaches back to this segment through other derived segments.
        seen: set[int] = set()
        frontier = set(children)
        while frontier:
            if segment_id in frontier:
                raise SegmentError(
                    "the expression refers back to this segment (a cycle)", code="cycle", field="expression"
                )
            seen |= frontier
            frontier = (
                set(SegmentDependency.objects.filter(derived_id__in=frontier).values_list("child_id", flat=True)) - seen
            )
    return children


def definition_of(segment: Segment) -> dict[str, Any]:
    if segment.kind == Segment.Kind.INDEPENDENT:
        return {
            "type": "independent",
            "rule": {
                "event_type": segment.event_type,
                "attribute": segment.attribute,
                "property": segment.property or "value",
                "operator": segment.operator,
                "value": float(segment.value) if segment.value is not None else None,
                "window_minutes": segment.window_minutes,
            },
        }
    return {"type": "derived", "expression": segment.expression}


def _apply_definition(segment: Segment, data: dict[str, Any]) -> set[int]:
    kind = str(data.get("type", segment.kind or "")).lower()
    if kind not in Segment.Kind.values:
        raise SegmentError("type must be independent or derived", field="type", reason="type_unknown")
    segment.kind = kind
    if kind == Segment.Kind.INDEPENDENT:
        if "rule" not in data and segment.pk:
            return set()
        rule = _clean_rule(data.get("rule"))
        for key, value in rule.items():
            setattr(segment, key, value)
        segment.expression = None
        return set()
    if "expression" not in data and segment.pk:
        return set(segment.dependencies.values_list("child_id", flat=True))
    expression = _clean_expression(data.get("expression"))
    children = _check_references(expression, segment.pk)
    segment.expression = expression
    segment.event_type = segment.attribute = segment.operator = segment.property = ""
    segment.value = segment.window_minutes = None
    return children


def _clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 200:
        raise SegmentError("name is required (at most 200 characters)", field="name", reason="name_required")
    return name.strip()


def _save_version(segment: Segment, actor: Any) -> None:
    SegmentVersion.objects.create(
        segment=segment,
        version=segment.version,
        definition=definition_of(segment),
        created_by_email=getattr(actor, "email", "") or "",
    )


@transaction.atomic
def segment_create(*, data: dict[str, Any], actor: Any) -> Segment:
    name = _clean_name(data.get("name"))
    if Segment.objects.filter(name=name).exists():
        raise SegmentError(f"a segment named {name!r} exists", code="duplicate", field="name", reason="name_taken")
    segment = Segment(name=name, description=str(data.get("description") or "")[:5000])
    if "active" in data:
        segment.active = bool(data["active"])
    children = _apply_definition(segment, data)
    segment.save()
    SegmentDependency.objects.bulk_create([SegmentDependency(derived=segment, child_id=c) for c in children])
    _save_version(segment, actor)
    record(action="segment.created", actor=actor, org=current_org(), entity=segment, after=definition_of(segment))
    return segment


@transaction.atomic
def segment_update(*, segment: Segment, data: dict[str, Any], actor: Any) -> Segment:
    """Change name, description, active or the definition (a new version; members are re-evaluated)."""
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    before = {**definition_of(segment), "active": segment.active, "version": segment.version}
    if "name" in data:
        name = _clean_name(data["name"])
        if Segment.objects.filter(name=name).exclude(pk=segment.pk).exists():
            raise SegmentError(f"a segment named {name!r} exists", code="duplicate", field="name", reason="name_taken")
        segment.name = name
    if "description" in data:
        segment.description = str(data["description"] or "")[:5000]
    definition_changed = False
    if "type" in data or "rule" in data or "expression" in data:
        old = definition_of(segment)
        children = _apply_definition(segment, data)
        definition_changed = definition_of(segment) != old
        if definition_changed:
            segment.version += 1
            SegmentDependency.objects.filter(derived=segment).delete()
            SegmentDependency.objects.bulk_create([SegmentDependency(derived=segment, child_id=c) for c in children])
    deactivated = False
    if "active" in data:
        if not isinstance(data["active"], bool):
            raise SegmentError("active must be true or false", field="active", reason="active_not_bool")
        deactivated = segment.active and not data["active"]
        segment.active = data["active"]
    segment.updated_at = timezone.now()
    segment.save()
    if definition_changed:
        _save_version(segment, actor)
    if deactivated or definition_changed:
        _exit_all(segment, reason="segment deactivated" if deactivated else f"definition changed to v{segment.version}")
    record(
        action="segment.updated",
        actor=actor,
        org=current_org(),
        entity=segment,
        before=before,
        after={**definition_of(segment), "active": segment.active, "version": segment.version},
    )
    return segment


EXIT_ALL_SQL = """
WITH gone AS (DELETE FROM segments_membership WHERE segment_id = %(seg)s RETURNING user_id, entered_at, rule_version)
INSERT INTO segments_transition (segment_id, user_id, kind, entered_at, exited_at, rule_version, event_id, reason,
                                 recorded_at)
SELECT %(seg)s, user_id, 'exit', entered_at, %(now)s, rule_version, '', %(reason)s, %(now)s FROM gone
"""


def _exit_all(segment: Segment, *, reason: str) -> int:
    """Close every current stay in the segment (deactivation or a new definition); ledger rows appended.

    One statement inside the caller's transaction (the members never pass through Python, however many).
    A changed definition then re-enters the users it holds for (reevaluate_segment, a job when large).
    """
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(EXIT_ALL_SQL, {"seg": segment.pk, "now": now, "reason": reason[:300]})
        exited = int(cursor.rowcount)
    if exited:  # the ledger rows above bypass the evaluator: its followers' refresh is marked here
        audience_refresh.segments_changed({segment.pk} & audience_refresh.followed_segments())
    # The window states stay: one is shared by every rule reading its window and holds only the window's aggregates,
    # which no definition changes; a window no active rule reads any more goes when its timer is due
    # (segments.evaluator.run_timers).
    return exited


@transaction.atomic
def segment_delete(*, segment: Segment, actor: Any) -> None:
    dependents = list(
        Segment.objects.filter(dependencies__child=segment).order_by("name").values("id", "name").distinct()
    )
    if dependents:
        names = ", ".join(f"{d['name']} (#{d['id']})" for d in dependents)
        raise SegmentError(
            f"derived segments depend on this segment: {names}",
            code="has_dependents",
            status=409,
            dependents=dependents,
        )
    if segment.campaigns.exists():
        names = ", ".join(segment.campaigns.values_list("name", flat=True))
        raise SegmentError(f"trigger campaigns use this segment: {names}", code="has_campaigns", status=409)
    before = {**definition_of(segment), "name": segment.name}
    pk = segment.pk
    segment.delete()
    # Built audiences naming it: their refresh records the error (the tree no longer validates), members kept.
    if audience_refresh.followers([pk]):
        audience_refresh.segments_changed([pk], due_at=timezone.now())
    record(
        action="segment.deleted",
        actor=actor,
        org=current_org(),
        entity_type="segments.segment",
        entity_id=pk,
        before=before,
    )


@transaction.atomic
def event_type_create(*, name: str, description: str = "", actor: Any) -> EventType:
    name = (name or "").strip()
    if not name or len(name) > 64 or not name.replace("_", "").replace("-", "").isalnum():
        raise SegmentError(
            "an event type is 1-64 letters, digits, _ or -", field="name", reason="event_type_name_invalid"
        )
    if name in BUILTIN_EVENT_TYPES or EventType.objects.filter(name=name).exists():
        raise SegmentError(f"event type {name!r} exists", code="duplicate", field="name", reason="event_type_taken")
    created = EventType.objects.create(name=name, description=description[:300])
    record(action="segments.event_type.created", actor=actor, org=current_org(), entity=created, after={"name": name})
    return created


# --- Ingestion -----------------------------------------------------------------------------------


@dataclass
class Ingested:
    result: events_mod.IngestResult
    outcome: Outcome | None


def runtime() -> str:
    return str(getattr(settings, "SEGMENTS_RUNTIME", "embedded"))


def ingest_events(
    *,
    raws: list[Any],
    now: datetime | None = None,
    evaluate: bool = True,
    strict_json: bool = False,
    may_hold_nul: bool = True,
) -> Ingested:
    """Validate (column by column), store (idempotent by event_id) and, on the embedded runtime, queue for
    evaluation; a batch of at most SEGMENTS_EVALUATE_INLINE_MAX events is evaluated before returning.

    The events and their queue row commit together, before the caller answers: an accepted event is durable
    and will be evaluated. A larger batch is evaluated by the evaluator loop (`segments_timers`, every 0.5 s),
    so the request does only the validation and one write; evaluation there takes several queued batches at
    once. Inline evaluation runs after the commit, in its own transaction, so a failure there never loses an
    accepted event (the batch stays queued for the loop). `strict_json` and `may_hold_nul` are what the API's
    JSON parser learnt about the body (see events.validate_columns). `evaluate=False` stores without queueing.
    """
    when = now or timezone.now()
    conf = org_settings()
    batch, rejected = events_mod.validate_columns(
        raws,
        types=events_mod.allowed_event_types(),
        now=when,
        retention_days=conf.retention_days,
        strict_json=strict_json,
        may_hold_nul=may_hold_nul,
    )
    result = events_mod.IngestResult(rejected=rejected)
    if runtime() == "jetstream":
        from segments.jetstream import publish_events

        result.accepted, result.duplicates = publish_events(batch.events())
        return Ingested(result, None)
    with transaction.atomic():
        stored = events_mod.store_batch(batch, now=timezone.now(), enqueue=evaluate)
    result.accepted = stored.fresh
    result.duplicates = len(batch) - stored.fresh
    outcome = None
    if stored.pending_id is not None and len(batch) > settings.SEGMENTS_EVALUATE_INLINE_MAX:
        wake_evaluator()
    elif stored.pending_id is not None:
        try:
            outcome = evaluate_pending(only=[stored.pending_id], now=when)
        except Exception:  # the events are stored and their batch still queued: the loop evaluates it
            logger.exception("inline evaluation failed; batch %s left to the evaluator loop", stored.pending_id)
    return Ingested(result, outcome)


def store_and_evaluate(events: list[events_mod.Event]) -> Outcome:
    """The JetStream evaluator's step for one batch of one org: store (idempotent), then evaluate."""
    with transaction.atomic():
        # Redelivered events are already stored: still evaluate them (evaluation is idempotent), so a
        # crash between the store and the evaluation never loses a transition.
        stored = events_mod.store_batch(events_mod.Batch.of(events), now=timezone.now(), touch_all=True)
    if stored.pending_id is None:
        return Outcome()
    return evaluate_pending(only=[stored.pending_id])


def run_retention(*, now: datetime | None = None, actor: Any = None) -> list[str]:
    when = now or timezone.now()
    days = org_settings().retention_days
    cutoff = (when - timedelta(days=days)).date()
    with transaction.atomic():
        dropped = events_mod.drop_partitions_before(cutoff)
    if dropped:
        record(
            action="segments.retention",
            actor=actor,
            org=current_org(),
            entity_type="segments.event",
            after={"dropped": dropped, "cutoff": cutoff.isoformat()},
        )
    return dropped


# --- Profiles ------------------------------------------------------------------------------------


@transaction.atomic
def profile_put(*, user_id: str, data: dict[str, Any], actor: Any) -> UserProfile:
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    if not user_id or len(user_id) > 200:
        raise SegmentError("user id must be 1-200 characters", field="user_id", reason="user_id_invalid")
    profile, _ = UserProfile.objects.select_for_update().get_or_create(user_id=user_id)
    before = {"email": profile.email, "phone": profile.phone, "attributes": profile.attributes}
    if "email" in data:
        email = str(data["email"] or "").strip()
        if email:
            try:
                validate_email(email)
            except ValidationError as exc:
                raise SegmentError("email is not a valid address", field="email", reason="email_invalid") from exc
        profile.email = email
    if "phone" in data:
        phone = str(data["phone"] or "").strip()
        if phone and not (phone.startswith("+") and phone[1:].isdigit() and 8 <= len(phone) <= 16):
            raise SegmentError("phone must be E.164 (+ and 7-15 digits)", field="phone", reason="phone_invalid")
        profile.phone = phone
    for key in ("device_tokens", "deviceTokens"):
        if key in data:
            tokens = data[key]
            if not isinstance(tokens, list) or not all(isinstance(t, str) and 0 < len(t) <= 4096 for t in tokens):
                raise SegmentError(
                    "device_tokens must be a list of strings", field="device_tokens", reason="device_tokens_invalid"
                )
            profile.device_tokens = tokens[:20]
    if "attributes" in data:
        if not isinstance(data["attributes"], dict):
            raise SegmentError("attributes must be an object", field="attributes", reason="attributes_not_object")
        profile.attributes = data["attributes"]
    profile.save()
    from segments.identity import sync_profile

    sync_profile(profile)  # the builder's `segment` field matches audience records by these keys
    record(
        action="segments.profile.updated",
        actor=actor,
        org=current_org(),
        entity=profile,
        before=before,
        after={"email": profile.email, "phone": profile.phone, "attributes": profile.attributes},
    )
    return profile


# --- Trigger campaigns ---------------------------------------------------------------------------


@transaction.atomic
def campaign_save(*, campaign: TriggerCampaign, actor: Any) -> TriggerCampaign:
    if campaign.channel not in TriggerCampaign.Channel.values:
        raise SegmentError("channel must be email, sms or push", field="channel", reason="channel_unknown")
    if not campaign.template.strip():
        raise SegmentError("template is required", field="template", reason="template_required")
    created = campaign.pk is None
    campaign.save()
    record(
        action="segments.campaign.created" if created else "segments.campaign.updated",
        actor=actor,
        org=current_org(),
        entity=campaign,
        after={"name": campaign.name, "status": campaign.status, "channel": campaign.channel},
    )
    return campaign


REEVALUATE_JOB = "segments.reevaluate"


def reevaluate_segment(
    segment: Segment, *, now: datetime | None = None, progress: Callable[[int, int], None] | None = None
) -> Outcome:
    """Evaluate a new or changed segment for the users it can hold for, so it starts filled (streamed by user
    buckets: memory stays flat whatever the number of users)."""
    if not segment.active:
        return Outcome()
    when = now or timezone.now()
    if segment.kind == Segment.Kind.DERIVED:
        return evaluate_derived_all(now=when, progress=progress)
    return evaluate_segment_users(
        segment.pk,
        segment.event_type,
        since=when - timedelta(minutes=segment.window_minutes or 1),
        now=when,
        progress=progress,
    )


def reevaluation_size(segment: Segment, *, now: datetime | None = None) -> int:
    """How many users a re-evaluation of the segment looks at."""
    when = now or timezone.now()
    with connection.cursor() as cursor:
        if segment.kind == Segment.Kind.DERIVED:
            cursor.execute(
                "SELECT count(*) FROM (SELECT user_id FROM segments_membership UNION "
                "SELECT user_id FROM segments_windowstate) u"
            )
        else:
            cursor.execute(
                "SELECT count(DISTINCT user_id) FROM segments_event WHERE event_type = %s AND event_time > %s",
                [segment.event_type, when - timedelta(minutes=segment.window_minutes or 1)],
            )
        return int(cursor.fetchone()[0])


def reevaluate_soon(segment: Segment, *, actor: Any = None) -> int | None:
    """Re-evaluate now when small; otherwise as a job (progress in the jobs list). Returns the job's id, if any.

    SEGMENTS_REEVALUATE_INLINE_MAX users (default 20,000) is about a second of work: a request waits that long
    at most; beyond it the request answers at once and the task cluster fills the segment."""
    if not segment.active:
        return None
    limit = int(getattr(settings, "SEGMENTS_REEVALUATE_INLINE_MAX", 20_000))
    if reevaluation_size(segment) <= limit:
        reevaluate_segment(segment)
        return None
    from p360.core.jobs.services import job_start

    job = job_start(kind=REEVALUATE_JOB, org=current_org(), actor=actor, params={"segment_id": segment.pk})
    return int(job.pk)
