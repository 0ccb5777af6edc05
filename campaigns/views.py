"""Marketer pages: programs read-only with their pacing; draft campaigns created and submitted for approval."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from campaigns.models import Campaign, CampaignStatus, Program
from campaigns.pacing import program_pacing
from campaigns.selectors import salesforce_account_url, salesforce_opportunity_url
from campaigns.services import CampaignServiceError, campaign_save, transition


def programs(request: HttpRequest) -> HttpResponse:
    org = request.org  # type: ignore[attr-defined]
    today = timezone.localdate()
    rows = []
    for program in Program.objects.order_by("-start_date", "name"):
        rows.append(
            {
                "program": program,
                "pacing": program_pacing(program, today),
                "salesforce_url": salesforce_opportunity_url(program.salesforce_opportunity_id),
            }
        )
    context = {
        "rows": rows,
        "today": today,
        "account_url": salesforce_account_url(getattr(org, "salesforce_account_id", "") or ""),
        "drafts": Campaign.objects.filter(status__in=[CampaignStatus.DRAFT, CampaignStatus.PENDING_APPROVAL]),
        "all_programs": Program.objects.order_by("name"),
    }
    return render(request, "campaigns/programs.html", context)


def _day(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


@require_POST
def create_draft(request: HttpRequest) -> HttpResponse:
    """A marketer's draft campaign under a program (the budget guard applies as everywhere)."""
    program = get_object_or_404(Program, pk=request.POST.get("program") or 0)
    campaign = Campaign(
        program=program,
        name=(request.POST.get("name") or "").strip(),
        budget=request.POST.get("budget") or Decimal("0"),
        start_date=_day(request.POST.get("start", "")),
        end_date=_day(request.POST.get("end", "")),
        status=CampaignStatus.DRAFT,
    )
    try:
        campaign_save(campaign=campaign, actor=request.user)  # type: ignore[arg-type]
        messages.success(request, f"Draft {campaign.name!r} saved. Submit it when it is ready for approval.")
    except CampaignServiceError as exc:
        messages.error(request, f"Not saved ({exc.code}): {exc}")
    except Exception as exc:  # model validation (empty name, duplicate name)
        from django.core.exceptions import ValidationError

        if not isinstance(exc, ValidationError):
            raise
        messages.error(request, "Not saved: " + "; ".join(exc.messages))
    return redirect("campaign-programs")


@require_POST
def submit_draft(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    try:
        transition(obj=campaign, action="submit", actor=request.user)  # type: ignore[arg-type]
        messages.success(request, f"{campaign.name!r} was submitted for approval.")
    except CampaignServiceError as exc:
        messages.error(request, str(exc))
    return redirect("campaign-programs")
