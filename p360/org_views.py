"""Marketer pages of an organisation (under /o/<slug>/)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from audiences.models import Audience
from campaigns.models import Campaign, CampaignStatus
from p360.core.jobs.models import Job


def org_home(request: HttpRequest) -> HttpResponse:
    org = request.org  # type: ignore[attr-defined]
    context = {
        "audience_count": Audience.objects.count(),
        "campaign_count": Campaign.objects.count(),
        "active_campaign_count": Campaign.objects.filter(status=CampaignStatus.ACTIVE).count(),
        "recent_audiences": Audience.objects.select_related("created_by")[:5],
        "recent_campaigns": Campaign.objects.all()[:5],
        "recent_jobs": Job.objects.filter(org=org)[:5],
    }
    return render(request, "portal/org_home.html", context)
