"""Org API of the audience builder (issue 5): field catalogue, Bombora topics, preview, saved audiences,
overlap and templates. Shapes are fixed by the brief/CONTRACT; extend, do not change."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.api.views import AudienceList, AudienceSerializer
from audiences.logic.tree import TreeError
from audiences.models import Audience, AudienceKind, AudienceTemplate
from audiences.preview import (
    audience_overlap,
    audience_preview,
    audience_summary,
    bombora_topics,
    built_audience_detail,
    field_catalogue,
)
from tenants.services import ServiceError


class TreeInvalid(exceptions.APIException):
    """400 with the contract error body; details: {"path", "errors": [{"path", "message"}]}."""

    status_code = 400
    default_code = "invalid_tree"

    def __init__(self, error: TreeError) -> None:
        super().__init__(detail=str(error), code="invalid_tree")
        self.details = error.details()


def bad_request(message: str, field: str) -> exceptions.ValidationError:
    return exceptions.ValidationError({field: [message]})


def body(request: Request) -> dict[str, Any]:
    data = request.data
    if not isinstance(data, dict):
        raise bad_request("the body must be a JSON object", "non_field_errors")
    return data


def int_param(raw: Any, name: str, *, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        raise bad_request("must be an integer", name)
    try:
        value = int(raw)
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: JSON 1e400 parses to inf
        raise bad_request("must be an integer", name) from exc
    return max(low, min(value, high))


class FieldCatalogue(APIView):
    """GET: the builder's fields (record, custom, Bombora pattern, audience) with operators and known values."""

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response(field_catalogue())


class BomboraTopicSearch(APIView):
    """GET ?q=cloud&limit=20: Bombora topics matching q, as builder fields (`bombora:<name>`)."""

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        q = str(request.query_params.get("q", ""))[:200]
        limit = int_param(request.query_params.get("limit"), "limit", default=20, low=1, high=200)
        return Response(bombora_topics(q=q, limit=limit))


class Preview(APIView):
    """POST {"tree", "sample"}: exact count, per-node counts, sample, UID2-ready share, elapsed time."""

    @extend_schema(request=dict, responses={200: dict})
    def post(self, request: Request) -> Response:
        data = body(request)
        if "tree" not in data:
            raise bad_request("this field is required", "tree")
        sample = int_param(data.get("sample"), "sample", default=10, low=0, high=100)
        try:
            return Response(audience_preview(tree=data["tree"], sample=sample))
        except TreeError as exc:
            raise TreeInvalid(exc) from exc


# --- saved audiences -------------------------------------------------------------------------------------------
def _service_call(fn: Any, **kwargs: Any) -> Any:
    """Run a service; tree errors -> 400 invalid_tree, service errors -> 400 invalid with the message."""

    try:
        return fn(**kwargs)
    except TreeError as exc:
        raise TreeInvalid(exc) from exc
    except ServiceError as exc:
        raise bad_request(str(exc), "non_field_errors") from exc


def _text(data: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise bad_request("this field is required", name)
        return None
    if not isinstance(value, str):
        raise bad_request("must be a string", name)
    return value


class AudienceListCreate(AudienceList):
    """GET: the org's audiences. POST {"name", "tree", "description"?}: save a built audience (materialised)."""

    @extend_schema(request=dict, responses={201: dict})
    def post(self, request: Request) -> Response:
        from audiences.saved import built_audience_create

        data = body(request)
        name = _text(data, "name", required=True)
        if "tree" not in data:
            raise bad_request("this field is required", "tree")
        audience = _service_call(
            built_audience_create,
            name=name,
            tree=data["tree"],
            description=_text(data, "description") or "",
            actor=request.user,
        )
        return Response(audience_summary(audience), status=201)


class AudienceDetailEdit(APIView):
    """GET: one audience (built ones with versions and count history). PATCH {"tree"?, "name"?,
    "description"?, "note"?}: a changed tree makes a new definition version and re-materialises."""

    def _get(self, pk: int) -> Audience:
        audience = Audience.objects.select_related("current_version").filter(pk=pk).first()
        if audience is None:
            raise exceptions.NotFound("No such audience.")
        return audience

    @extend_schema(responses={200: dict})
    def get(self, request: Request, pk: int) -> Response:
        audience = self._get(pk)
        if audience.kind == AudienceKind.BUILT:
            return Response(built_audience_detail(audience))
        return Response({**AudienceSerializer(audience).data, **audience_summary(audience)})

    @extend_schema(request=dict, responses={200: dict})
    def patch(self, request: Request, pk: int) -> Response:
        from audiences.saved import built_audience_update

        audience = self._get(pk)
        data = body(request)
        updated = _service_call(
            built_audience_update,
            audience=audience,
            actor=request.user,
            tree=data.get("tree"),
            name=_text(data, "name"),
            description=_text(data, "description"),
            note=_text(data, "note") or "",
        )
        return Response(built_audience_detail(updated))


class AudienceRefresh(APIView):
    """POST: re-materialise a built audience now."""

    @extend_schema(request=None, responses={200: dict})
    def post(self, request: Request, pk: int) -> Response:
        from audiences.saved import built_audience_refresh

        audience = Audience.objects.filter(pk=pk).first()
        if audience is None:
            raise exceptions.NotFound("No such audience.")
        _service_call(built_audience_refresh, audience=audience, actor=request.user, reason="manual")
        audience.refresh_from_db()
        return Response(built_audience_detail(audience))


class Overlap(APIView):
    """GET ?ids=1,2[,3]: exclusive Venn regions and the intersection of two or three audiences."""

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        raw = str(request.query_params.get("ids", ""))
        try:
            ids = [int(part) for part in raw.split(",") if part.strip()]
        except ValueError as exc:
            raise bad_request("ids must be audience ids separated by commas", "ids") from exc
        if len(set(ids)) != len(ids) or not 2 <= len(ids) <= 3:
            raise bad_request("give two or three different audience ids", "ids")
        try:
            return Response(audience_overlap(ids))
        except LookupError as exc:
            raise exceptions.NotFound(str(exc)) from exc


TEMPLATE_LIST = {"type": "array", "items": {"type": "object", "additionalProperties": {}}}  # issue 15: an array


class Templates(APIView):
    """GET: built-in and saved templates. POST {"name", "tree", "description"?}: save a template (placeholders:
    `"value": null, "placeholder": true`, or `"field": "bombora:", "placeholder": "topic"`)."""

    @extend_schema(responses={200: OpenApiResponse(response=TEMPLATE_LIST, description="built-in and saved templates")})
    def get(self, request: Request) -> Response:
        from audiences.saved import ensure_builtin_templates

        if not AudienceTemplate.objects.filter(builtin=True).exists():
            ensure_builtin_templates()
        return Response([_template(t) for t in AudienceTemplate.objects.all()])

    @extend_schema(request=dict, responses={201: dict})
    def post(self, request: Request) -> Response:
        from audiences.saved import template_create

        data = body(request)
        if "tree" not in data:
            raise bad_request("this field is required", "tree")
        template = _service_call(
            template_create,
            name=_text(data, "name", required=True),
            tree=data["tree"],
            description=_text(data, "description") or "",
            actor=request.user,
        )
        return Response(_template(template), status=201)


def _template(template: AudienceTemplate) -> dict[str, Any]:
    return {
        "id": template.pk,
        "name": template.name,
        "description": template.description,
        "tree": template.tree,
        "builtin": template.builtin,
    }
