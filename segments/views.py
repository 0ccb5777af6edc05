"""Marketer pages for event segments (under /o/<slug>/segments/).

Live membership counts use Server-Sent Events: the updates only flow server -> browser, SSE is plain
HTTP that the existing WSGI stack, proxies and the org middleware already handle (no ASGI server or
Channels for WebSockets), and EventSource reconnects by itself. Each stream lives ~30 s and tells the
browser to reconnect, so a WSGI worker is never held for long.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from p360.core.audit.services import record
from segments import selectors, services
from segments.events import allowed_event_types
from segments.models import Segment, Send, TriggerCampaign, UserProfile
from segments.services import SegmentError, definition_of

SSE_SECONDS = 30
RECENT_CHANGES = 15
SENDS_PER_PAGE = 50


def _base(request: HttpRequest) -> str:
    return f"/o/{request.org.slug}/segments/"  # type: ignore[attr-defined]


def segment_list(request: HttpRequest) -> HttpResponse:
    segments = list(Segment.objects.all())
    counts = selectors.member_counts()
    names = {s.pk: s.name for s in segments}
    rows = [{"segment": s, "members": counts.get(s.pk, 0), "summary": selectors.describe(s, names)} for s in segments]
    return render(request, "segments/list.html", {"rows": rows, "base": _base(request)})


def _form_data(post: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": post.get("name", ""),
        "description": post.get("description", ""),
        "type": post.get("type", "independent"),
    }
    if data["type"] == "derived":
        try:
            data["expression"] = json.loads(post.get("expression") or "null")
        except ValueError as exc:
            raise SegmentError(
                f"the expression is not valid JSON: {exc}",
                field="expression",
                reason="expression_json",
                detail=str(exc),
            ) from exc
    else:

        def number(name: str) -> Any:
            raw = (post.get(name) or "").strip()
            try:
                return int(raw) if raw.lstrip("-").isdigit() else float(raw)
            except ValueError:
                return raw

        data["rule"] = {
            "event_type": post.get("event_type", ""),
            "attribute": post.get("attribute", ""),
            "property": post.get("property", "") or None,
            "operator": post.get("operator", ""),
            "value": number("value"),
            "window_minutes": number("window_minutes"),
        }
    return data


# The editor's control for each field a SegmentError names (the first match wins): the control gets
# aria-invalid and points at the error, so a keyboard or screen-reader user lands on what to fix.
_ERROR_CONTROLS = (
    ("rule.event_type", "event_type"),
    ("rule.attribute", "attribute"),
    ("rule.operator", "operator"),
    ("rule.value", "value"),
    ("rule.window_minutes", "window_minutes"),
    ("rule.property", "property"),
    ("expression", "expression"),
    ("name", "name"),
    ("description", "description"),
)


def _error_control(field: str) -> str:
    for prefix, control in _ERROR_CONTROLS:
        if field == prefix or field.startswith(prefix + "."):
            return control
    return ""


# The editor speaks to a marketer, not to an API client. SegmentError messages name the API's field paths
# ("rule.value must be a number") and the API keeps them (CONTRACT), so the page words them here, by the
# error's `reason` (one per check in segments.services), never by matching the message's phrases.
_PAGE_WORDS: dict[str, str] = {
    "expression_json": "The expression is not valid JSON ({detail}).",
    "rule_not_object": "The rule is incomplete: choose what to measure, an event type, a comparison and a value.",
    "event_type_unknown": "Choose an event type from the list.",
    "attribute_unknown": "Choose what to measure from the list.",
    "operator_unknown": "Choose a comparison from the list.",
    "value_not_number": "The value must be a number.",
    "value_out_of_range": "The value must be a number below 1,000,000,000,000,000.",
    "window_out_of_range": "The time window must be a whole number of minutes from 1 to 1,440.",
    "property_invalid": "The property must be a name of at most 100 characters.",
    "expression_too_large": "The expression is too deep or too large (at most 8 levels and 200 parts).",
    "expression_not_object": 'The expression must be a group, e.g. {{"op": "and", "children": [...]}}.',
    "op_unknown": 'Each group\'s "op" must be "and", "or" or "not".',
    "children_empty": "Each group needs at least one segment: add one or remove the group.",
    "not_one_child": "A NOT group takes exactly one segment or group.",
    "child_not_segment_id": "Each item must be one of the org's segments: choose it from the list.",
    "unknown_segment": "There is no segment with id {unknown}: choose another segment or remove it.",
    "cycle": "A segment cannot be built from itself: a chosen segment already includes this one.",
    "name_required": "The name is required (at most 200 characters).",
    "name_taken": "A segment named “{name}” already exists: choose another name.",
    "type_unknown": "Choose independent or derived.",
}


def _page_message(exc: SegmentError, name: str) -> str:
    """The marketer's words for a SegmentError; a reason the table does not know is shown as the service wrote it."""
    message = str(exc)
    words = _PAGE_WORDS.get(exc.reason)
    if words is None:
        return message[:1].upper() + message[1:]
    unknown = ", ".join(str(pk) for pk in exc.extra.get("unknown", []))
    return words.format(name=name.strip(), unknown=unknown, detail=exc.extra.get("detail", message))


def _posted_values(post: Any) -> dict[str, Any]:
    """What the person typed, as typed: a rejected form is shown again with nothing lost (the parsed
    values are not enough: a bad JSON expression has none, and a rule keeps only the chosen type's fields)."""
    return {
        "name": post.get("name", ""),
        "description": post.get("description", ""),
        "type": post.get("type", "independent"),
        "rule": {
            key: post.get(key, "")
            for key in ("event_type", "attribute", "property", "operator", "value", "window_minutes")
        },
    }


def _readable_expression(text: str) -> bool:
    """Whether the picker can show this expression text (else the page opens the JSON box on an error)."""
    if not text.strip():
        return True
    try:
        parsed = json.loads(text)
    except ValueError:
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get("children"), list)


def segment_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    segment = get_object_or_404(Segment, pk=pk) if pk else None
    error = ""
    error_control = ""
    values: dict[str, Any] = {}
    expression_text = ""
    if segment is not None:
        values = {"name": segment.name, "description": segment.description, **definition_of(segment)}
        if values.get("expression") is not None:
            expression_text = json.dumps(values["expression"])
    if request.method == "POST":
        values = _posted_values(request.POST)
        expression_text = request.POST.get("expression", "")
        try:
            data = _form_data(request.POST)
            if segment is None:
                segment = services.segment_create(data=data, actor=request.user)
            else:
                segment = services.segment_update(segment=segment, data=data, actor=request.user)
            services.reevaluate_soon(segment, actor=request.user)
            messages.success(request, f"Segment “{segment.name}” saved (version {segment.version}).")
            return redirect(f"{_base(request)}{segment.pk}/")
        except SegmentError as exc:
            error = _page_message(exc, request.POST.get("name", ""))
            error_control = _error_control(exc.field)
    others = list((Segment.objects.exclude(pk=segment.pk) if segment else Segment.objects.all()).order_by("name"))
    context = {
        "segment": segment,
        "values": values,
        "expression_text": expression_text,
        "error": error,
        "error_control": error_control,
        "base": _base(request),
        "api": f"/o/{request.org.slug}/api/v1/",  # type: ignore[attr-defined]
        "event_types": sorted(allowed_event_types()),
        "attributes": Segment.Attribute.choices,
        "operators": Segment.Operator.choices,
        "others": others,
        # the derived-segment picker's choices (static/segments/expression.js)
        "picker_segments": [
            {"id": o.pk, "name": o.name, "derived": o.kind == Segment.Kind.DERIVED, "active": o.active} for o in others
        ],
        "picker_readable": _readable_expression(expression_text),
        "json_open": request.method == "POST" and request.POST.get("json_open") == "1",  # as the person left it
    }
    return render(request, "segments/edit.html", context, status=400 if error else 200)


def segment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    segment = get_object_or_404(Segment, pk=pk)
    context = {
        "segment": segment,
        "definition": json.dumps(definition_of(segment), indent=2),
        "summary": selectors.describe(segment),
        "stats": selectors.statistics(segment),
        "series": [
            {"hour": row["hour"].strftime("%d %b %H:00"), "entries": row["entries"], "exits": row["exits"]}
            for row in selectors.hourly_series(segment)
        ],
        "members": selectors.members(segment)[:50],
        "history": selectors.history(segment)[:50],
        "campaigns": segment.campaigns.all(),
        "base": _base(request),
        "api": f"/o/{request.org.slug}/api/v1/",  # type: ignore[attr-defined]
    }
    return render(request, "segments/detail.html", context)


def members_download(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    """The segment page's "Members CSV": a file people open, so formula-looking user ids are neutralised
    (p360.core.exports); the API's `members?format=csv` is the machine file with exact values."""
    segment = get_object_or_404(Segment, pk=pk)
    record(action="segment.exported", actor=request.user, org=request.org, entity=segment, after={"format": "csv"})  # type: ignore[arg-type,attr-defined]
    response = StreamingHttpResponse(
        selectors.iter_members_csv(segment, for_people=True), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="segment-{segment.pk}-members.csv"'
    return response


@require_POST
def segment_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    segment = get_object_or_404(Segment, pk=pk)
    segment = services.segment_update(segment=segment, data={"active": not segment.active}, actor=request.user)
    if segment.active:
        services.reevaluate_soon(segment, actor=request.user)
    messages.success(request, f"“{segment.name}” is now {'active' if segment.active else 'inactive'}.")
    return redirect(f"{_base(request)}{segment.pk}/")


def live_counts(request: HttpRequest) -> StreamingHttpResponse:
    """SSE: `counts` events with {segment id: members} once a second, then `retry` and close."""
    schema = connection.schema_name  # type: ignore[attr-defined]
    asked = request.GET.get("seconds", "")
    seconds = min(SSE_SECONDS, max(1, int(asked))) if asked.isascii() and asked.isdigit() else SSE_SECONDS

    def stream() -> Iterator[str]:
        from django_tenants.utils import schema_context

        yield "retry: 2000\n\n"
        last: dict[int, int] | None = None
        for _ in range(seconds):
            with schema_context(schema):
                counts = selectors.member_counts()
            if counts != last:
                yield f"event: counts\ndata: {json.dumps(counts)}\n\n"
                last = counts
            else:
                yield ": keep-alive\n\n"
            time.sleep(1)

    response = StreamingHttpResponse(stream(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response


def user_lookup(request: HttpRequest) -> HttpResponse:
    query = (request.GET.get("q") or "").strip()[:200]
    profile = UserProfile.objects.filter(user_id=query).first() if query else None
    matches = list(UserProfile.objects.filter(user_id__istartswith=query).order_by("user_id")[:20]) if query else []
    context = {
        "query": query,
        "profile": profile,
        "matches": matches,
        "segments": selectors.user_segments(query) if profile else [],
        "history": selectors.user_history(query)[:50] if profile else [],
        # the empty page: the latest entries and exits (the ledger's newest rows), so there is someone to look up
        "recent": [] if query else selectors.recent_transitions(RECENT_CHANGES),
        "base": _base(request),
    }
    return render(request, "segments/users.html", context)


def campaigns(request: HttpRequest) -> HttpResponse:
    """Trigger campaigns with per-channel analytics, and the send history: filtered by campaign, channel and
    status, newest first, a page at a time."""
    rows = []
    for campaign in TriggerCampaign.objects.select_related("segment").order_by("name"):
        rows.append({"campaign": campaign, "analytics": selectors.campaign_analytics(campaign)})
    asked = {key: request.GET.get(key, "") for key in ("campaign", "channel", "status")}
    # only filters that mean something are applied (and shown): junk in the query string is ignored, never a 500
    filters = {
        "campaign": asked["campaign"] if asked["campaign"].isascii() and asked["campaign"].isdigit() else "",
        "channel": asked["channel"] if asked["channel"] in TriggerCampaign.Channel.values else "",
        "status": asked["status"] if asked["status"] in Send.Status.values else "",
    }
    sends = selectors.sends(
        campaign=int(filters["campaign"]) if filters["campaign"] else None,
        channel=filters["channel"] or None,
        status=filters["status"] or None,
    )
    page = Paginator(sends, SENDS_PER_PAGE).get_page(request.GET.get("page"))
    query = urlencode({k: v for k, v in filters.items() if v})
    context = {
        "rows": rows,
        "page": page,
        "filters": filters,
        "query": query,
        "channels": TriggerCampaign.Channel.choices,
        "statuses": Send.Status.choices,
        "filtered": any(filters.values()),
        "base": _base(request),
    }
    return render(request, "segments/campaigns.html", context)
