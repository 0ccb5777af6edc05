"""Org API: programs > campaigns > line items, the status workflow, pacing, reallocation, TTD sync.

Every refusal of a service is the contract's error body, e.g. 400 `{"error": {"code": "budget_exceeded",
"message", "details"}}`; nothing is saved (each service runs in one transaction).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns.models import Campaign, CampaignStatus, LineItem, Pacing, PricingModel, Program, dates_ordered
from campaigns.services import (
    TRANSITIONS,
    CampaignServiceError,
    campaign_save,
    line_item_save,
    program_save,
    transition,
)


class ServiceRefused(exceptions.APIException):
    status_code = 400

    def __init__(self, exc: CampaignServiceError) -> None:
        super().__init__(detail=str(exc), code=exc.code)
        self.details = {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in exc.details.items()}
        if exc.code == "permission_denied":
            self.status_code = 403


def refused(exc: CampaignServiceError) -> ServiceRefused:
    return ServiceRefused(exc)


@contextmanager
def service_call() -> Iterator[None]:
    """A service's refusal, or a model's own validation (e.g. a duplicate name caught by `full_clean`),
    as the contract's 400 error body rather than a 500."""
    try:
        yield
    except CampaignServiceError as exc:
        raise refused(exc) from exc
    except DjangoValidationError as exc:
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        raise exceptions.ValidationError(detail) from exc


def _d(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


def line_item_json(li: LineItem) -> dict[str, Any]:
    return {
        "id": li.pk,
        "campaign": li.campaign_id,
        "name": li.name,
        "external_id": li.external_id,
        "status": li.status,
        "budget": str(li.budget),
        "currency": li.currency,
        "bid": str(li.bid),
        "pricing_model": li.pricing_model,
        "pacing": li.pacing,
        "creatives": li.creatives,
        "start": _d(li.start_date),
        "end": _d(li.end_date),
        "auto_pause_at_budget": li.auto_pause_at_budget,
        "ttd_ad_group_id": li.ttd_ad_group_id,
    }


def campaign_json(c: Campaign, *, nested: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": c.pk,
        "program": c.program_id,
        "name": c.name,
        "source": c.source,
        "status": c.status,
        "budget": str(c.budget),
        "currency": c.currency,
        "start": _d(c.start_date),
        "end": _d(c.end_date),
        "audiences": [a.pk for a in c.audiences.all()],
        "ttd_campaign_id": c.ttd_campaign_id,
    }
    if nested:
        body["line_items"] = [line_item_json(li) for li in c.line_items.all()]
    return body


def _account_url() -> str | None:
    """The organisation's Salesforce account (the program's opportunity belongs to it)."""
    from campaigns.selectors import salesforce_account_url
    from tenants.selectors import current_org

    org = current_org()
    return salesforce_account_url(getattr(org, "salesforce_account_id", "") or "")


def program_json(p: Program, *, nested: bool = False) -> dict[str, Any]:
    from campaigns.selectors import salesforce_opportunity_url

    body: dict[str, Any] = {
        "id": p.pk,
        "name": p.name,
        "budget": str(p.budget),
        "currency": p.currency,
        "start": _d(p.start_date),
        "end": _d(p.end_date),
        "salesforce_opportunity_id": p.salesforce_opportunity_id,
        "salesforce_url": salesforce_opportunity_url(p.salesforce_opportunity_id),
        "salesforce_account_url": _account_url(),
        "is_default": p.is_default,
    }
    if nested:
        body["campaigns"] = [campaign_json(c, nested=True) for c in p.campaigns.all()]
        body["allocated"] = str(sum((c.budget for c in p.campaigns.all()), start=p.budget * 0))
    return body


class _Dates(serializers.Serializer):
    start = serializers.DateField(required=False, allow_null=True)
    end = serializers.DateField(required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not dates_ordered(attrs.get("start"), attrs.get("end")):
            raise serializers.ValidationError({"end": "end is before start"})
        return attrs


class ProgramIn(_Dates):
    name = serializers.CharField(max_length=255)
    budget = serializers.CharField()
    currency = serializers.CharField(required=False, max_length=3)
    salesforce_opportunity_id = serializers.CharField(required=False, allow_blank=True, max_length=64)


class CampaignIn(_Dates):
    program = serializers.IntegerField()
    name = serializers.CharField(max_length=255)
    budget = serializers.CharField()
    currency = serializers.CharField(required=False, max_length=3)
    audience = serializers.IntegerField(required=False, allow_null=True)
    audiences = serializers.ListField(child=serializers.IntegerField(), required=False)


class LineItemIn(_Dates):
    campaign = serializers.IntegerField()
    name = serializers.CharField(max_length=255)
    budget = serializers.CharField()
    bid = serializers.CharField(required=False)
    pricing_model = serializers.ChoiceField(choices=PricingModel.values, required=False)
    pacing = serializers.ChoiceField(choices=Pacing.values, required=False)
    creatives = serializers.CharField(required=False, allow_blank=True, max_length=500)
    external_id = serializers.CharField(required=False, allow_blank=True, max_length=100)
    currency = serializers.CharField(required=False, max_length=3)
    auto_pause_at_budget = serializers.BooleanField(required=False)


def _validated(serializer_class: type[serializers.Serializer], data: Any, *, partial: bool = False) -> dict[str, Any]:
    serializer = serializer_class(data=data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


_FIELD_MAP = {"start": "start_date", "end": "end_date", "program": "program_id", "campaign": "campaign_id"}


def _apply(obj: Any, data: dict[str, Any], skip: tuple[str, ...] = ()) -> None:
    for key, value in data.items():
        if key not in skip:
            setattr(obj, _FIELD_MAP.get(key, key), value)


class ListFilters(serializers.Serializer):
    """The filters of the orchestration lists (`?program=`, `?campaign=`, `?status=`): a value that is not a
    whole number (or not a status) is a 400 with the error body, never ignored; a valid one always filters
    (an id of nothing, e.g. another org's program, gives an empty page)."""

    program = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    campaign = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    status = serializers.ChoiceField(choices=CampaignStatus.values, required=False)


def list_filters(request: Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    unknown_values = {k: v for k, v in request.query_params.items() if k in ListFilters().fields and k not in allowed}
    if unknown_values:
        raise exceptions.ValidationError({k: "not a filter of this list" for k in unknown_values})
    query = ListFilters(data={k: request.query_params[k] for k in allowed if k in request.query_params})
    query.is_valid(raise_exception=True)
    return dict(query.validated_data)


def paginated(view: APIView, request: Request, queryset: Any, render: Any) -> Response:
    """One page of `queryset` (the API's shared bounded limit/offset pagination): count, next, previous, results."""
    from p360.core.api_pagination import BoundedLimitOffsetPagination

    paginator = BoundedLimitOffsetPagination()
    page: list[Any] | None = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response([render(obj) for obj in page or []])


class ProgramList(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        filters = list_filters(request, ())
        programs = Program.objects.order_by("name", "pk").filter(**filters)
        return paginated(self, request, programs, program_json)

    @extend_schema(request=ProgramIn, responses={201: dict})
    def post(self, request: Request) -> Response:
        data = _validated(ProgramIn, request.data)
        program = Program()
        _apply(program, data)
        with service_call():
            program_save(program=program, actor=request.user)  # type: ignore[arg-type]
        return Response(program_json(program, nested=True), status=status.HTTP_201_CREATED)


def _program_tree(pk: int) -> Program:
    campaigns = Campaign.objects.order_by("name", "pk").prefetch_related("line_items", "audiences")
    return get_object_or_404(Program.objects.prefetch_related(Prefetch("campaigns", queryset=campaigns)), pk=pk)


class ProgramDetail(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request: Request, pk: int) -> Response:
        return Response(program_json(_program_tree(pk), nested=True))

    @extend_schema(request=ProgramIn, responses={200: dict})
    def patch(self, request: Request, pk: int) -> Response:
        program = get_object_or_404(Program, pk=pk)
        _apply(program, _validated(ProgramIn, request.data, partial=True))
        with service_call():
            program_save(program=program, actor=request.user)  # type: ignore[arg-type]
        return Response(program_json(_program_tree(pk), nested=True))


def _audiences(data: dict[str, Any]) -> list[int] | None:
    if "audiences" in data:
        return list(data["audiences"])
    if data.get("audience"):
        return [data["audience"]]
    return None


def _set_audiences(campaign: Campaign, ids: list[int] | None) -> None:
    from audiences.models import Audience

    if ids is None:
        return
    found = list(Audience.objects.filter(pk__in=ids))
    if len(found) != len(set(ids)):
        raise exceptions.ValidationError({"audience": "unknown audience"})
    campaign.audiences.set(found)


def save_campaign_from_api(request: Request, campaign: Campaign, data: dict[str, Any]) -> Campaign:
    from django.db import transaction

    if "program" in data and not Program.objects.filter(pk=data["program"]).exists():
        raise exceptions.ValidationError({"program": "unknown program"})
    _apply(campaign, data, skip=("audience", "audiences"))
    with service_call(), transaction.atomic():
        campaign_save(campaign=campaign, actor=request.user)  # type: ignore[arg-type]
        _set_audiences(campaign, _audiences(data))
    return campaign


class CampaignCreateMixin:
    """POST /campaigns (the contract's create; GET stays the existing list)."""

    @extend_schema(request=CampaignIn, responses={201: dict})
    def post(self, request: Request) -> Response:
        data = _validated(CampaignIn, request.data)
        campaign = save_campaign_from_api(request, Campaign(status=CampaignStatus.DRAFT), data)
        return Response(campaign_json(campaign, nested=True), status=status.HTTP_201_CREATED)


class CampaignUpdate(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request: Request, pk: int) -> Response:
        return Response(campaign_json(get_object_or_404(Campaign, pk=pk), nested=True))

    @extend_schema(request=CampaignIn, responses={200: dict})
    def patch(self, request: Request, pk: int) -> Response:
        campaign = get_object_or_404(Campaign, pk=pk)
        data = _validated(CampaignIn, request.data, partial=True)
        save_campaign_from_api(request, campaign, data)
        return Response(campaign_json(campaign, nested=True))


class LineItemList(APIView):
    @extend_schema(parameters=[ListFilters], responses={200: dict})
    def get(self, request: Request) -> Response:
        filters = list_filters(request, ("campaign", "program", "status"))
        items = LineItem.objects.order_by("campaign_id", "name", "pk")
        if "campaign" in filters:
            items = items.filter(campaign_id=filters["campaign"])
        if "program" in filters:
            items = items.filter(campaign__program_id=filters["program"])
        if "status" in filters:
            items = items.filter(status=filters["status"])
        return paginated(self, request, items, line_item_json)

    @extend_schema(request=LineItemIn, responses={201: dict})
    def post(self, request: Request) -> Response:
        data = _validated(LineItemIn, request.data)
        if not Campaign.objects.filter(pk=data["campaign"]).exists():
            raise exceptions.ValidationError({"campaign": "unknown campaign"})
        li = LineItem(campaign_id=data.pop("campaign"), status=CampaignStatus.DRAFT)
        _apply(li, data)
        with service_call():
            line_item_save(line_item=li, actor=request.user)  # type: ignore[arg-type]
        return Response(line_item_json(li), status=status.HTTP_201_CREATED)


class LineItemDetail(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request: Request, pk: int) -> Response:
        return Response(line_item_json(get_object_or_404(LineItem, pk=pk)))

    @extend_schema(request=LineItemIn, responses={200: dict})
    def patch(self, request: Request, pk: int) -> Response:
        li = get_object_or_404(LineItem, pk=pk)
        data = _validated(LineItemIn, request.data, partial=True)
        data.pop("campaign", None)  # a line item stays in its campaign
        _apply(li, data)
        with service_call():
            line_item_save(line_item=li, actor=request.user)  # type: ignore[arg-type]
        return Response(line_item_json(li))


class Transition(APIView):
    """POST /campaigns/<id>/<action> or /line-items/<id>/<action>: submit, approve, launch, reject, pause,
    resume, complete."""

    model: type[Campaign] | type[LineItem] = Campaign

    @extend_schema(request=None, responses={200: dict})
    def post(self, request: Request, pk: int, action: str) -> Response:
        obj = get_object_or_404(self.model, pk=pk)
        if action not in TRANSITIONS:
            raise exceptions.NotFound()
        with service_call():
            reason = str(request.data.get("reason", "")) if isinstance(request.data, dict) else ""
            done = transition(obj=obj, action=action, actor=request.user, reason=reason)  # type: ignore[arg-type]
        body = line_item_json(done) if isinstance(done, LineItem) else campaign_json(done)  # type: ignore[arg-type]
        return Response(body)


class PacingQuery(serializers.Serializer):
    program = serializers.IntegerField(help_text="the program's id")
    as_of = serializers.DateField(required=False, help_text="the day spend counts up to (default today)")


class PacingView(APIView):
    """Per campaign and line item of a program: budget, spent, expected_to_date, projected and status
    (on_track | under | over); money as strings with 2 decimals."""

    @extend_schema(parameters=[PacingQuery], responses={200: dict})
    def get(self, request: Request) -> Response:
        from campaigns.pacing import program_pacing

        query = PacingQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        program = get_object_or_404(Program, pk=query.validated_data["program"])
        as_of = query.validated_data.get("as_of") or timezone.localdate()
        return Response(program_pacing(program, as_of))


class Reallocation(APIView):
    """GET: the suggested moves for a campaign; POST {"moves": [...]} applies them in one step."""

    @extend_schema(responses={200: dict})
    def get(self, request: Request, pk: int) -> Response:
        from campaigns.automation import suggest_reallocation

        campaign = get_object_or_404(Campaign, pk=pk)
        moves = suggest_reallocation(campaign, timezone.localdate())
        return Response({"campaign": campaign.pk, "moves": [m.as_json() for m in moves]})

    @extend_schema(request=dict, responses={200: dict})
    def post(self, request: Request, pk: int) -> Response:
        from campaigns.automation import apply_reallocation

        campaign = get_object_or_404(Campaign, pk=pk)
        moves = request.data.get("moves") if isinstance(request.data, dict) else None
        if not isinstance(moves, list) or not all(
            isinstance(m, dict) and {"from", "to", "amount"} <= set(m) for m in moves
        ):
            raise exceptions.ValidationError({"moves": 'a list of {"from": id, "to": id, "amount": "0.00"}'})
        normalised = []
        for m in moves:
            src = m["from"].get("id") if isinstance(m["from"], dict) else m["from"]
            dst = m["to"].get("id") if isinstance(m["to"], dict) else m["to"]
            if not str(src).isdigit() or not str(dst).isdigit():
                raise exceptions.ValidationError({"moves": "line item ids are whole numbers"})
            normalised.append({"from": int(str(src)), "to": int(str(dst)), "amount": m["amount"]})
        with service_call():
            row = apply_reallocation(campaign=campaign, moves=normalised, actor=request.user)  # type: ignore[arg-type]
        return Response({"action": row.pk, "changes": row.changes})
