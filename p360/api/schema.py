"""OpenAPI descriptions drf-spectacular cannot infer."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "tenants.auth.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <token>`; create one with `manage.py create_api_token EMAIL`.",
        }


_ERROR = {
    "description": "The JSON error body",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                            "details": {"type": "object", "additionalProperties": {}},
                        },
                    }
                },
            }
        }
    },
}
_SLUG = {"name": "slug", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[-a-zA-Z0-9_]+$"}}
_TOKEN: list[dict[str, list[str]]] = [{"tokenAuth": []}]
_UPLOAD = {"type": "object", "additionalProperties": {}}
_TUS_HEADERS = [
    {"name": "Tus-Resumable", "in": "header", "required": True, "schema": {"type": "string", "enum": ["1.0.0"]}}
]


def _op(op_id: str, summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "operationId": op_id,
        "summary": summary,
        "tags": ["o"],
        "security": _TOKEN,
        "responses": {**responses, "400": _ERROR, "404": _ERROR},
        **extra,
    }


def document_plain_views(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the org API's plain Django views (the members CSV stream and the
    tus upload protocol) are part of the API too, so the document describes them (issue 15)."""
    paths = result.setdefault("paths", {})
    upload_id = {"name": "upload_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
    audience_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
    paths["/o/{slug}/api/v1/audiences/{id}/members"] = {
        "get": _op(
            "o_api_v1_audiences_members_csv",
            "The audience's members as CSV, every value exactly as stored (a machine file)",
            {"200": {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}}},
            parameters=[
                _SLUG,
                audience_id,
                {"name": "format", "in": "query", "required": False, "schema": {"type": "string", "enum": ["csv"]}},
            ],
        )
    }
    paths["/o/{slug}/api/v1/uploads/"] = {
        "get": _op(
            "o_api_v1_uploads_list",
            "The organisation's uploads (tus)",
            {"200": {"description": "uploads", "content": {"application/json": {"schema": _UPLOAD}}}},
            parameters=[
                _SLUG,
                *[
                    {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                    for n in ("status", "purpose", "limit", "offset")
                ],
            ],
        ),
        "post": _op(
            "o_api_v1_uploads_create",
            "Create a tus upload (creation extension): the body is empty, the size in Upload-Length",
            {"201": {"description": "created", "content": {"application/json": {"schema": _UPLOAD}}}, "413": _ERROR},
            parameters=[
                _SLUG,
                *_TUS_HEADERS,
                {
                    "name": "Upload-Length",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 0},
                },
                {"name": "Upload-Metadata", "in": "header", "required": False, "schema": {"type": "string"}},
            ],
        ),
    }
    resource = [_SLUG, upload_id]
    paths["/o/{slug}/api/v1/uploads/{upload_id}"] = {
        "get": _op(
            "o_api_v1_uploads_retrieve",
            "One upload",
            {"200": {"description": "upload", "content": {"application/json": {"schema": _UPLOAD}}}},
            parameters=resource,
        ),
        "patch": _op(
            "o_api_v1_uploads_append",
            "Append bytes at Upload-Offset (tus core)",
            {"204": {"description": "appended"}, "409": _ERROR, "415": _ERROR},
            parameters=[
                *resource,
                *_TUS_HEADERS,
                {
                    "name": "Upload-Offset",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 0},
                },
            ],
            requestBody={
                "required": True,
                "content": {"application/offset+octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            },
        ),
        "delete": _op(
            "o_api_v1_uploads_terminate",
            "Terminate an upload (tus termination)",
            {"204": {"description": "terminated"}},
            parameters=[*resource, *_TUS_HEADERS],
        ),
    }
    return result
