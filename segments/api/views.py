"""Org API for event segments (CONTRACT.md, "Event segments").

Every error body here is ours plus document 003's `timestamp` and `trace_id` (the request id, also
in the X-Request-ID response header), inside the `error` object as document 003 shows them.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from rest_framework import exceptions, status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from p360.core.api_errors import error_body
from p360.core.api_pagination import BoundedLimitOffsetPagination
from p360.core.api_parsers import PayloadTooLarge, SafeJSONParser
from segments import selectors, services
from segments.events import MAX_BATCH
from segments.models import Segment, TriggerCampaign
from segments.services import SegmentError, definition_of

MAX_BODY_BYTES = 32 * 1024 * 1024  # 10,000 events with their attributes


class SegmentsJSONParser(SafeJSONParser):
    """The API's JSON parser (depth, size, NUL rules) with a larger body limit, wording its refusals in the
    segments API's codes (`invalid_json`, `payload_too_large`)."""

    max_bytes = MAX_BODY_BYTES

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except PayloadTooLarge as exc:
            raise SegmentError(
                f"the body is over {MAX_BODY_BYTES // 1024 // 1024} MB", code="payload_too_large", status=413
            ) from exc
        except exceptions.ParseError as exc:
            raise SegmentError(f"the body is not valid JSON: {exc.detail}", code="invalid_json") from exc
        except exceptions.ValidationError as exc:  # a NUL character
            raise SegmentError("the body holds a NUL character", code="invalid") from exc


class EventsJSONParser(SegmentsJSONParser):
    """Events judge NUL per event (that event is rejected with its index; the others are accepted)."""

    refuse_nul = False


class SegmentsApiView(APIView):
    parser_classes = [SegmentsJSONParser]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, SegmentError):
            details: dict[str, Any] = {"field": exc.field} if exc.field else {}
            details.update(exc.extra)
            return Response(error_body(exc.status, str(exc), exc.code, details), status=exc.status)
        return super().handle_exception(exc)

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        data = getattr(response, "data", None)
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            data["error"]["timestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            data["error"]["trace_id"] = getattr(request._request, "request_id", "")
        return response

    def body(self, request: Request) -> dict[str, Any]:
        data = request.data
        if not isinstance(data, dict):
            raise SegmentError("the body must be a JSON object", code="invalid")
        encoded = json.dumps(data, ensure_ascii=False, default=str)
        try:
            encoded.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise SegmentError("the body holds invalid text (a lone surrogate)", code="invalid") from exc
        if "\\u0000" in encoded:
            raise SegmentError("the body holds a NUL character", code="invalid")
        return data


def segment_json(segment: Segment, members: int | None = None, job: int | None = None) -> dict[str, Any]:
    return {
        "id": segment.pk,
        "name": segment.name,
        "description": segment.description,
        **definition_of(segment),
        "active": segment.active,
        "version": segment.version,
        "created_at": segment.created_at,
        "updated_at": segment.updated_at,
        # .all() (not values_list) so SegmentList's prefetch_related is used: one query, not one per segment
        "dependencies": sorted(d.child_id for d in segment.dependencies.all()),
        **({"members": members} if members is not None else {}),
        # a large audience is filled by a job (GET /api/v1/jobs/<id> shows its progress)
        **({"reevaluation_job": job} if job is not None else {}),
    }


PAUSE_GC = True  # False: the collector runs during the request (bench.profile_segments' A/B of the previous path)


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for one events request.

    Decoding and validating 10,000 events allocates ~100,000 containers (dicts, lists), none of them in a cycle
    (reference counting frees them all): each 2,000 allocations started a collection that traversed the young
    objects, and every few of those the older generations, ~10 ms per batch for nothing to collect. Restored on
    the way out (left off if someone else had turned it off); other threads' cycles wait for one request.
    """
    was_enabled = gc.isenabled()
    if PAUSE_GC:
        gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


FORGET_BODY = True  # False: the decoded body lives until the request ends (bench.profile_segments' A/B)


def _forget_body(request: Request) -> None:
    """Drop the decoded events while the collector is still off (session 13).

    The request kept them: the first allocation after the collector came back on started a collection that
    traversed all ~100,000 of them (alive, so promoted, and every few requests an older generation too), ~5 ms per
    10,000-event request. Freed here by reference counting, they are never traversed. The view has answered;
    nothing reads `request.data` after it.
    """
    for name in ("_data", "_full_data"):
        if hasattr(request, name):
            setattr(request, name, {})


class Events(SegmentsApiView):
    """POST one UserEvent or {"events": [...]} (at most 10,000) -> 202 accepted/duplicates/rejected."""

    parser_classes = [EventsJSONParser]

    def post(self, request: Request) -> Response:
        with collector_paused():  # request.data is decoded here, on first access
            try:
                return self._ingest(request)
            finally:
                if FORGET_BODY:
                    _forget_body(request)

    def _ingest(self, request: Request) -> Response:
        data = request.data
        if isinstance(data, dict) and "events" in data:
            raws = data["events"]
            if not isinstance(raws, list):
                raise SegmentError("events must be a list", field="events")
        elif isinstance(data, dict):
            raws = [data]
        elif isinstance(data, list):
            raws = data
        else:
            raise SegmentError('send one event object or {"events": [...]}', code="invalid")
        if not raws:
            raise SegmentError("no events", field="events")
        if len(raws) > MAX_BATCH:
            raise SegmentError(f"at most {MAX_BATCH:,} events per request", code="too_many_events", status=413)
        ingested = services.ingest_events(
            raws=raws,
            strict_json=bool(request.parser_context.get("json_strict")),
            may_hold_nul=bool(request.parser_context.get("json_may_hold_nul", True)),
        )
        return Response(ingested.result.as_dict(), status=status.HTTP_202_ACCEPTED)


class SegmentList(SegmentsApiView):
    def get(self, request: Request) -> Response:
        segments = list(Segment.objects.all().prefetch_related("dependencies"))
        counts = selectors.member_counts([s.pk for s in segments])
        return Response({"results": [segment_json(s, counts.get(s.pk, 0)) for s in segments]})

    def post(self, request: Request) -> Response:
        segment = services.segment_create(data=self.body(request), actor=request.user)
        job = services.reevaluate_soon(segment, actor=request.user)
        return Response(segment_json(segment, job=job), status=status.HTTP_201_CREATED)


class SegmentDetail(SegmentsApiView):
    def get(self, request: Request, pk: int) -> Response:
        segment = get_object_or_404(Segment, pk=pk)
        return Response({**segment_json(segment), "statistics": selectors.statistics(segment)})

    def patch(self, request: Request, pk: int) -> Response:
        segment = get_object_or_404(Segment, pk=pk)
        was_active, version = segment.active, segment.version
        segment = services.segment_update(segment=segment, data=self.body(request), actor=request.user)
        job = None
        if segment.active and (not was_active or segment.version != version):
            job = services.reevaluate_soon(segment, actor=request.user)
        return Response(segment_json(segment, job=job))

    put = patch

    def delete(self, request: Request, pk: int) -> Response:
        segment = get_object_or_404(Segment, pk=pk)
        services.segment_delete(segment=segment, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SegmentStatus(SegmentDetail):
    """Document 003's PATCH /segments/{id}/status."""


class SegmentMembers(SegmentsApiView):
    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # `?format=csv` is ours (streamed below), not DRF's renderer override.
        return super().perform_content_negotiation(request, force=True)

    def get(self, request: Request, pk: int) -> Any:
        segment = get_object_or_404(Segment, pk=pk)
        if request.query_params.get("format") == "csv":
            response = StreamingHttpResponse(selectors.iter_members_csv(segment), content_type="text/csv")
            response["Content-Disposition"] = f'attachment; filename="segment-{segment.pk}-members.csv"'
            return response
        paginator = BoundedLimitOffsetPagination()
        page = paginator.paginate_queryset(selectors.members(segment), request, view=self)
        rows = [{"user_id": m.user_id, "entered_at": m.entered_at, "rule_version": m.rule_version} for m in page or []]
        return paginator.get_paginated_response(rows)


class SegmentHistory(SegmentsApiView):
    def get(self, request: Request, pk: int) -> Response:
        segment = get_object_or_404(Segment, pk=pk)
        paginator = BoundedLimitOffsetPagination()
        rows = selectors.history(segment, request.query_params.get("user_id") or None)
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response([selectors.transition_row(t) for t in page or []])


class SegmentBacktest(SegmentsApiView):
    """POST {"rule": {...}, "days": N} -> what the rule would have matched (before activating it)."""

    def post(self, request: Request) -> Response:
        body = self.body(request)
        rule = services._clean_rule(body.get("rule"))
        days = body.get("days", 7)
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 366:
            raise SegmentError("days must be a whole number from 1 to 366", field="days")
        return Response(selectors.backtest(rule, days=days))


class UserSegments(SegmentsApiView):
    """`GET users/<id>/segments`, the hot read: one SQL statement (selectors.user_segments) rendered as JSON
    without content negotiation. Authentication, the org access rule and the error body are the API's own."""

    renderer_classes = [JSONRenderer]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        return (self.renderer_classes[0](), "application/json")

    def get(self, request: Request, user_id: str) -> Response:
        return Response({"user_id": user_id, "segments": selectors.user_segments(user_id)})


def profile_json(profile: Any) -> dict[str, Any]:
    return {
        "id": profile.user_id,
        "user_id": profile.user_id,
        "email": profile.email,
        "phone": profile.phone,
        "device_tokens": profile.device_tokens,
        "attributes": profile.attributes,
        "created_at": profile.created_at,
        "last_active_at": profile.last_active_at,
    }


class UserProfileView(SegmentsApiView):
    def get(self, request: Request, user_id: str) -> Response:
        profile = selectors.profile(user_id)
        if profile is None:
            raise SegmentError(f"no user {user_id!r}", code="not_found", status=404)
        return Response(profile_json(profile))

    def put(self, request: Request, user_id: str) -> Response:
        profile = services.profile_put(user_id=user_id, data=self.body(request), actor=request.user)
        return Response(profile_json(profile))


def campaign_json(c: TriggerCampaign) -> dict[str, Any]:
    return {
        "id": c.pk,
        "name": c.name,
        "segment": c.segment_id,
        "channel": c.channel,
        "on": c.on,
        "subject": c.subject,
        "template": c.template,
        "status": c.status,
        "scheduled_at": c.scheduled_at,
        "frequency_cap": c.frequency_cap,
        "frequency_hours": c.frequency_hours,
        "respect_quiet_hours": c.respect_quiet_hours,
    }


def _campaign_from(body: dict[str, Any], campaign: TriggerCampaign) -> TriggerCampaign:
    from django.utils.dateparse import parse_datetime

    aliases = {"segmentId": "segment", "channelType": "channel", "scheduledAt": "scheduled_at"}
    data = {aliases.get(k, k): v for k, v in body.items()}
    if "segment" in data:
        ref = str(data["segment"])
        segment = Segment.objects.filter(pk=int(ref)).first() if ref.isdigit() and len(ref) <= 18 else None
        if segment is None:
            raise SegmentError("unknown segment", code="unknown_segment", field="segment")
        campaign.segment = segment
    for key in ("name", "subject"):
        if key in data:
            text = str(data[key] or "")
            if len(text) > 200:  # 200-character columns: longer was a DataError (a 500)
                raise SegmentError(f"{key} must be at most 200 characters", field=key)
            setattr(campaign, key, text)
    if "template" in data:
        campaign.template = str(data["template"] or "")[:5000]
    if "channel" in data:
        campaign.channel = str(data["channel"]).lower()
    if "on" in data:
        if data["on"] not in TriggerCampaign.On.values:
            raise SegmentError("on must be enter or exit", field="on")
        campaign.on = data["on"]
    if "status" in data:
        if str(data["status"]).upper() not in TriggerCampaign.Status.values:
            raise SegmentError("status must be ACTIVE, PAUSED or COMPLETED", field="status")
        campaign.status = str(data["status"]).upper()
    if "scheduled_at" in data:
        value = data["scheduled_at"]
        try:
            parsed = parse_datetime(value) if isinstance(value, str) else None
        except ValueError:  # well-formed but impossible ("2026-02-30T00:00"): parse_datetime raises
            parsed = None
        if value is not None and parsed is None:
            raise SegmentError("scheduled_at must be an ISO-8601 date-time", field="scheduled_at")
        campaign.scheduled_at = parsed
    for key in ("frequency_cap", "frequency_hours"):
        if key in data:
            if isinstance(data[key], bool) or not isinstance(data[key], int) or not 1 <= data[key] <= 10_000:
                raise SegmentError(f"{key} must be a whole number from 1 to 10000", field=key)
            setattr(campaign, key, data[key])
    if "respect_quiet_hours" in data:
        campaign.respect_quiet_hours = bool(data["respect_quiet_hours"])
    if not campaign.name.strip():
        raise SegmentError("name is required", field="name")
    if campaign.segment_id is None:
        raise SegmentError("segment is required", field="segment")
    return campaign


class TriggerCampaignList(SegmentsApiView):
    def get(self, request: Request) -> Response:
        return Response({"results": [campaign_json(c) for c in TriggerCampaign.objects.order_by("name")]})

    def post(self, request: Request) -> Response:
        campaign = _campaign_from(self.body(request), TriggerCampaign())
        services.campaign_save(campaign=campaign, actor=request.user)
        return Response(campaign_json(campaign), status=status.HTTP_201_CREATED)


class TriggerCampaignDetail(SegmentsApiView):
    def get(self, request: Request, pk: int) -> Response:
        campaign = get_object_or_404(TriggerCampaign, pk=pk)
        sends = campaign.sends.order_by("-id")[:100]
        return Response(
            {
                **campaign_json(campaign),
                "analytics": selectors.campaign_analytics(campaign),
                "sends": [
                    {
                        "id": s.pk,
                        "user_id": s.user_id,
                        "channel": s.channel,
                        "status": s.status,
                        "sent_at": s.sent_at,
                        "detail": s.detail,
                    }
                    for s in sends
                ],
            }
        )

    def patch(self, request: Request, pk: int) -> Response:
        campaign = _campaign_from(self.body(request), get_object_or_404(TriggerCampaign, pk=pk))
        services.campaign_save(campaign=campaign, actor=request.user)
        return Response(campaign_json(campaign))

    put = patch
