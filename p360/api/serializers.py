"""Serializers of the global API."""

from __future__ import annotations

from rest_framework import serializers

from tenants.access import orgs_visible_to
from tenants.models import Organization, User


class OrganizationSerializer(serializers.ModelSerializer):
    pages_url = serializers.SerializerMethodField()
    api_url = serializers.SerializerMethodField()

    class Meta:
        model = Organization
        fields = [
            "id",
            "slug",
            "name",
            "is_active",
            "ttd_advertiser_id",
            "salesforce_account_id",
            "pages_url",
            "api_url",
        ]

    def get_pages_url(self, org: Organization) -> str:
        return f"/o/{org.slug}/"

    def get_api_url(self, org: Organization) -> str:
        return f"/o/{org.slug}/api/v1/"


class MeSerializer(serializers.ModelSerializer):
    orgs = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "email", "full_name", "role", "orgs"]

    def get_orgs(self, user: User) -> list[str]:

        return list(orgs_visible_to(user).values_list("slug", flat=True))
