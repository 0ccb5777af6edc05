"""Org API of audience insights (issue 18): analytics of an audience or a builder tree, similarity, exclusion,
usage and lineage, BI exports (CSV and Parquet, token or session). Shapes: CONTRACT "Audience insights"."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.api.builder_views import TreeInvalid, _service_call, bad_request, body
from audiences.insights import exports, selectors, services, similarity
from audiences.logic.tree import TreeError
from audiences.models import Audience
from audiences.preview import audience_summary


def _audience(pk: int) -> Audience:
    audience = Audience.objects.select_related("current_version").filter(pk=pk).first()
    if audience is None:
        raise exceptions.NotFound("No such audience.")
    return audience


def _id(raw: Any, name: str) -> int:
    if isinstance(raw, bool):
        raise bad_request("must be an audience id", name)
    try:
        value = int(raw)
    except (TypeError, ValueError, OverflowError) as exc:
        raise bad_request("must be an audience id", name) from exc
    if not 0 < value < 2**63:
        raise bad_request("must be an audience id", name)
    return value


class AudienceInsights(APIView):
    """GET: size, composition {field: [{value, count}]}, quality {score, parts, recommendations}, stale,
    data_changed_at."""

    @extend_schema(responses={200: dict})
    def get(self, request: Request, pk: int) -> Response:
        audience = _audience(pk)
        payload = selectors.audience_insights(audience)
        services.audience_viewed(audience=audience, actor=request.user, org=request.org, surface="api")  # type: ignore[arg-type,attr-defined]
        return Response(payload)


class TreeInsights(APIView):
    """POST {"tree"}: the same analytics for an unsaved builder tree."""

    @extend_schema(request=dict, responses={200: dict})
    def post(self, request: Request) -> Response:
        data = body(request)
        if "tree" not in data:
            raise bad_request("this field is required", "tree")
        try:
            return Response(selectors.tree_insights(data["tree"]))
        except TreeError as exc:
            raise TreeInvalid(exc) from exc


class Similarity(APIView):
    """GET ?a=<id>&b=<id>: sizes, overlap, union, Jaccard and two circles sized by audience."""

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        a = _id(request.query_params.get("a"), "a")
        b = _id(request.query_params.get("b"), "b")
        if a == b:
            raise bad_request("choose two different audiences", "b")
        try:
            return Response(similarity.compare(a, b))
        except LookupError as exc:
            raise exceptions.NotFound(str(exc)) from exc


class MostSimilar(APIView):
    """GET ?limit=5: the audiences sharing most of this one's people (Jaccard)."""

    @extend_schema(responses={200: dict})
    def get(self, request: Request, pk: int) -> Response:
        from audiences.api.builder_views import int_param

        audience = _audience(pk)
        limit = int_param(request.query_params.get("limit"), "limit", default=5, low=1, high=50)
        return Response({"id": audience.pk, "similar": selectors.most_similar(audience, limit=limit)})


class Exclude(APIView):
    """POST {"exclude": [ids], "name"?, "save"?: true}: "remove members of X" -- the tree, and a saved audience."""

    @extend_schema(request=dict, responses={200: dict, 201: dict})
    def post(self, request: Request, pk: int) -> Response:
        base = _audience(pk)
        data = body(request)
        raw = data.get("exclude")
        if raw is None:
            raise bad_request("this field is required", "exclude")
        ids = [_id(v, "exclude") for v in (raw if isinstance(raw, list) else [raw])]
        save = data.get("save", True)
        if not isinstance(save, bool):
            raise bad_request("must be true or false", "save")
        name = data.get("name") or ""
        if not isinstance(name, str):
            raise bad_request("must be a string", "name")
        result = _service_call(
            services.exclusion_create, base=base, exclude=ids, actor=request.user, name=name, save=save
        )
        saved = result["audience"]
        return Response(
            {"tree": result["tree"], "audience": audience_summary(saved) if saved is not None else None},
            status=201 if saved is not None else 200,
        )


class Usage(APIView):
    """GET: lineage both ways (used by campaigns, deliveries, derived audiences; built from), count history and the
    audit trail (who viewed, exported or changed it)."""

    @extend_schema(responses={200: dict})
    def get(self, request: Request, pk: int) -> Response:
        audience = _audience(pk)
        return Response(selectors.audience_usage(audience, request.org.pk))  # type: ignore[attr-defined]


def export(request: HttpRequest, pk: int) -> HttpResponse | StreamingHttpResponse:
    """GET ?what=members|analytics&format=csv|parquet: a file for BI tools (exact values; token or session).

    A plain view, not DRF: DRF would read `format` as its renderer override."""
    from p360.core.api_errors import error_response

    if request.method != "GET":
        return error_response(405, "only GET is allowed")
    audience = Audience.objects.select_related("current_version").filter(pk=pk).first()
    if audience is None:
        return error_response(404, "No such audience.")
    what = request.GET.get("what", "members")
    fmt = request.GET.get("format", "csv")
    if what not in ("members", "analytics"):
        return error_response(400, "what must be members or analytics", details={"what": [what[:50]]})
    if fmt not in exports.FORMATS:
        return error_response(400, "format must be csv or parquet", code="unsupported_format")
    if what == "members":  # streamed: the members file (CSV as is, Parquet in row groups); memory stays flat
        response: HttpResponse | StreamingHttpResponse = StreamingHttpResponse(
            exports.members(audience, fmt), content_type=exports.FORMATS[fmt]
        )
        rows = audience.record_count
    else:
        frame = exports.analytics_frame(audience)
        response = HttpResponse(exports.encode(frame, fmt), content_type=exports.FORMATS[fmt])
        rows = frame.height
    response["Content-Disposition"] = f'attachment; filename="audience-{audience.pk}-{what}.{fmt}"'
    services.audience_exported(
        audience=audience,
        actor=request.user,  # type: ignore[arg-type]
        org=request.org,  # type: ignore[attr-defined]
        what=what,
        fmt=fmt,
        rows=rows,
    )
    return response


class BomboraDomain(APIView):
    """GET ?domain=acme.com[&week=YYYY-MM-DD]: the domain's Bombora topics that week with composite score, research
    volume and surge indicator (null when the file did not carry them). Bombora data is global reference data."""

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        import datetime as dt

        from bombora.store import current_week, domain_signals

        domain = str(request.query_params.get("domain", "")).strip()[:253]
        if not domain:
            raise bad_request("this field is required", "domain")
        raw_week = request.query_params.get("week")
        try:
            week = dt.date.fromisoformat(raw_week) if raw_week else current_week()
        except ValueError as exc:
            raise bad_request("must be a date (YYYY-MM-DD)", "week") from exc
        if week is not None and not dt.date(2000, 1, 1) <= week <= dt.date(2100, 12, 31):
            raise bad_request("must be a date between 2000 and 2100", "week")
        week = week - dt.timedelta(days=week.weekday()) if week else None
        return Response(
            {
                "domain": domain.lower(),
                "week": week.isoformat() if week else None,
                "topics": domain_signals(domain, week),
            }
        )
