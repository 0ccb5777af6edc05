"""Org API: campaigns (read)."""

from __future__ import annotations

from rest_framework import generics, serializers

from campaigns.models import Campaign


class CampaignSerializer(serializers.ModelSerializer):
    class Meta:
        model = Campaign
        fields = ["id", "name", "status", "start_date", "end_date", "budget", "currency", "created_at", "updated_at"]


class CampaignList(generics.ListAPIView):
    queryset = Campaign.objects.all()
    serializer_class = CampaignSerializer


class CampaignDetail(generics.RetrieveAPIView):
    queryset = Campaign.objects.all()
    serializer_class = CampaignSerializer
