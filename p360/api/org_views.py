"""The per-organisation API root (/o/<slug>/api/v1/). Domain apps add their endpoints beside it."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from p360.api.serializers import OrganizationSerializer


class OrgApiRoot(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        org = request._request.org  # type: ignore[attr-defined]
        base = f"/o/{org.slug}/api/v1/"
        return Response(
            {
                "org": OrganizationSerializer(org).data,
                "endpoints": {
                    "audiences": f"{base}audiences",
                    "imports": f"{base}imports",
                    "uploads": f"{base}uploads/",
                    "campaigns": f"{base}campaigns",
                },
            }
        )
