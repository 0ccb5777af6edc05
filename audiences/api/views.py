"""Org API: audiences (read); the builder issue adds preview, save and members export."""

from __future__ import annotations

from rest_framework import generics, serializers

from audiences.models import Audience


class AudienceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Audience
        fields = ["id", "name", "description", "kind", "status", "record_count", "created_at", "updated_at"]


class AudienceList(generics.ListAPIView):
    queryset = Audience.objects.all()
    serializer_class = AudienceSerializer


class AudienceDetail(generics.RetrieveAPIView):
    queryset = Audience.objects.all()
    serializer_class = AudienceSerializer
