"""Org API of the audience builder (issue 5): field catalogue, Bombora topics, preview, saved audiences,
overlap and templates. Shapes are fixed by the brief/CONTRACT; extend, do not change."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.logic.tree import TreeError
from audiences.preview import audience_preview, bombora_topics, field_catalogue


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
    except (TypeError, ValueError) as exc:
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
