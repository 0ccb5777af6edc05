"""The global API (/api/v1/): who am I, which organisations may I see."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from p360.api.serializers import MeSerializer, OrganizationSerializer
from tenants.access import orgs_visible_to
from tenants.models import Organization


class ApiRoot(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response({"orgs": "/api/v1/orgs/", "me": "/api/v1/me/", "schema": "/api/schema/", "docs": "/api/docs/"})


class OrgList(generics.ListAPIView):
    """Organisations the caller may see (all active ones for super admins)."""

    serializer_class = OrganizationSerializer

    def get_queryset(self) -> QuerySet[Organization]:
        return orgs_visible_to(self.request.user).order_by("name")


class Me(APIView):
    @extend_schema(responses={200: MeSerializer})
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(request.user).data)
