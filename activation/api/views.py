"""Org API of activation: destinations, delivery configuration, deliveries, an audience's activation."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from activation import selectors, services
from activation.access import can_manage_activation
from activation.delivery import start_delivery
from activation.models import Destination
from audiences.models import Audience
from p360.core.api_pagination import BoundedLimitOffsetPagination
from tenants.services import ServiceError


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise exceptions.ValidationError({"non_field_errors": ["the body must be a JSON object"]})
    return dict(request.data)


def _require_admin(request: Request) -> None:
    """Destinations hold credentials: only the org's admins (staff roles) may change them or send."""
    if not can_manage_activation(request.user, request.org):  # type: ignore[attr-defined]
        raise exceptions.PermissionDenied("only the organisation's administrators may change deliveries")


def _refused(exc: ServiceError) -> exceptions.ValidationError:
    return exceptions.ValidationError({"non_field_errors": [str(exc)]})


class DestinationList(APIView):
    def get(self, request: Request) -> Response:
        return Response({"results": [selectors.destination_row(d) for d in Destination.objects.order_by("name")]})

    def post(self, request: Request) -> Response:
        _require_admin(request)
        data = _body(request)
        audiences = data.pop("audiences", None)
        if audiences is not None and not isinstance(audiences, list):
            raise exceptions.ValidationError({"audiences": ["a list of audience ids"]})
        try:
            d = services.destination_create(
                actor=request.user,  # type: ignore[arg-type]
                name=str(data.pop("name", "")),
                kind=str(data.pop("kind", "")),
                data=data,
                audience_ids=audiences,
            )
        except ServiceError as exc:
            raise _refused(exc) from exc
        return Response(selectors.destination_row(d), status=201)


class DestinationDetail(APIView):
    def _get(self, pk: int) -> Destination:
        d = Destination.objects.filter(pk=pk).first()
        if d is None:
            raise exceptions.NotFound("no such destination")
        return d

    def get(self, request: Request, pk: int) -> Response:
        return Response(selectors.destination_row(self._get(pk)))

    def patch(self, request: Request, pk: int) -> Response:
        _require_admin(request)
        data = _body(request)
        audiences = data.pop("audiences", None)
        if audiences is not None and not isinstance(audiences, list):
            raise exceptions.ValidationError({"audiences": ["a list of audience ids"]})
        try:
            d = services.destination_update(actor=request.user, destination=self._get(pk), data=data,  # type: ignore[arg-type]
                                            audience_ids=audiences)  # fmt: skip
        except ServiceError as exc:
            raise _refused(exc) from exc
        return Response(selectors.destination_row(d))


class DeliveryConfigView(APIView):
    def get(self, request: Request) -> Response:
        return Response(selectors.config_row())

    def patch(self, request: Request) -> Response:
        _require_admin(request)
        changes = _body(request)
        if "actor" in changes:  # would collide with the keyword argument (a TypeError, a 500)
            raise exceptions.ValidationError({"non_field_errors": ["unknown setting 'actor'"]})
        try:
            services.config_update(actor=request.user, **changes)  # type: ignore[arg-type]
        except ServiceError as exc:
            raise _refused(exc) from exc
        return Response(selectors.config_row())

    post = patch


class DeliveryList(APIView):
    def get(self, request: Request) -> Response:
        name = request.query_params.get("destination") or None
        if name and not Destination.objects.filter(name=name).exists():
            raise exceptions.NotFound(f"no destination named {name!r}")
        paginator = BoundedLimitOffsetPagination()  # ?limit= (default 100, at most 1,000) &offset=
        page: list[Any] | None = paginator.paginate_queryset(selectors.deliveries(name), request, view=self)
        return paginator.get_paginated_response([selectors.delivery_row(d) for d in page or []])

    def post(self, request: Request) -> Response:
        """Start a delivery: {"destination": NAME, "dry_run": bool}; a dry run answers with its diff."""
        _require_admin(request)
        data = _body(request)
        d = Destination.objects.filter(name=str(data.get("destination") or "")).first()
        if d is None:
            raise exceptions.ValidationError({"destination": ["unknown destination"]})
        dry_run = data.get("dry_run", False)
        if not isinstance(dry_run, bool):  # "false" as a string must never start a real delivery
            raise exceptions.ValidationError({"dry_run": ["true or false (a JSON boolean)"]})
        delivery = start_delivery(destination=d, actor=request.user, dry_run=dry_run)  # type: ignore[arg-type]
        return Response(selectors.delivery_row(delivery), status=201 if not delivery.dry_run else 200)


class AudienceActivation(APIView):
    def get(self, request: Request, pk: int) -> Response:
        audience = Audience.objects.filter(pk=pk).first()
        if audience is None:
            raise exceptions.NotFound("no such audience")
        return Response(selectors.audience_activation(audience))
