"""Org API: audiences (read); the builder issue adds preview, save and members export."""

from __future__ import annotations

from django.http import Http404, HttpRequest, StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.models import Audience, AudienceImport, DedupeRule, ImportMode
from audiences.selectors import import_status, members_csv_stream
from audiences.services import import_configure, import_create, import_start
from p360.core.api_errors import error_response
from p360.core.api_pagination import bounded_int
from p360.core.audit.services import record
from p360.core.uploads.services import get_completed_upload
from tenants.services import ServiceError


class AudienceSerializer(serializers.ModelSerializer):
    # issue 5: built audiences carry their tree; `count` is the contract's name for the size
    count = serializers.IntegerField(source="record_count", read_only=True)

    class Meta:
        model = Audience
        fields = ["id", "name", "description", "kind", "status", "record_count", "count", "tree", "created_at",
                  "updated_at"]  # fmt: skip


class AudienceList(generics.ListAPIView):
    queryset = Audience.objects.all()
    serializer_class = AudienceSerializer


class AudienceDetail(generics.RetrieveAPIView):
    queryset = Audience.objects.all()
    serializer_class = AudienceSerializer


# --- imports ------------------------------------------------------------------------------------------
class ImportRequestSerializer(serializers.Serializer):
    upload_id = serializers.UUIDField(help_text="a completed upload (tus, POST .../uploads/)")
    audience_name = serializers.CharField(max_length=200)
    mapping = serializers.DictField(
        child=serializers.CharField(allow_null=True, allow_blank=True),
        required=False,
        help_text="source column -> field; omitted columns keep the automatic mapping; null keeps a custom field",
    )
    mode = serializers.ChoiceField(choices=ImportMode.values, default=ImportMode.APPEND)
    dedupe = serializers.ChoiceField(choices=DedupeRule.values, default=DedupeRule.FIRST)
    dedupe_key = serializers.CharField(required=False, allow_blank=True, default="")
    default_country = serializers.CharField(required=False, default="US", max_length=2)
    start = serializers.BooleanField(default=True, help_text="false: only inspect (headers, proposed mapping)")


class ImportList(APIView):
    """GET: the org's imports (newest first). POST: import a completed upload into an audience."""

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        limit = bounded_int(request.query_params.get("limit"), "limit", default=50, low=1, high=500)
        imports = AudienceImport.objects.all()[:limit]
        return Response({"results": [import_status(imp) for imp in imports]})

    @extend_schema(request=ImportRequestSerializer, responses={201: dict})
    def post(self, request: Request) -> Response:
        body = ImportRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            upload = get_completed_upload(data["upload_id"])
        except Exception as exc:
            raise exceptions.NotFound("no completed upload with this id in this organisation") from exc
        try:
            imp = import_create(
                audience_name=data["audience_name"],
                source_name=upload.filename,
                actor=request.user,  # type: ignore[arg-type]
                upload_id=str(upload.pk),
            )
            if data["start"]:
                mapping = {**imp.mapping, **data.get("mapping", {})}
                imp = import_configure(
                    imp=imp,
                    actor=request.user,  # type: ignore[arg-type]
                    mapping=mapping,
                    custom_types={h: t for h, t in imp.custom_types.items() if not mapping.get(h)},
                    mode=data["mode"],
                    dedupe_key=data["dedupe_key"],
                    dedupe_rule=data["dedupe"],
                    default_country=data["default_country"],
                )
                imp = import_start(imp=imp, actor=request.user)  # type: ignore[arg-type]
        except ServiceError as exc:
            raise exceptions.ValidationError({"file": [str(exc)]}) from exc
        return Response(import_status(imp), status=201)


class ImportDetail(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request: Request, pk: int) -> Response:
        imp = AudienceImport.objects.filter(pk=pk).first()
        if imp is None:
            raise exceptions.NotFound()
        return Response(import_status(imp))


def members_csv(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    """The current version's records: canonical, derived and custom fields, streamed from PostgreSQL.

    A machine file: every value exactly as stored (p360.core.exports); the audience page offers the
    people's downloads (XLSX, formula-safe CSV)."""
    audience = Audience.objects.filter(pk=pk).select_related("current_version").first()
    if audience is None:
        raise Http404("No such audience.")
    if request.GET.get("format", "csv") != "csv":
        return error_response(400, "only format=csv is available", code="unsupported_format")  # type: ignore[return-value]
    response = StreamingHttpResponse(
        members_csv_stream(audience, for_people=False), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="audience-{audience.pk}-members.csv"'
    record(action="audience.exported", actor=request.user, org=request.org, entity=audience)  # type: ignore[arg-type,attr-defined]
    return response
