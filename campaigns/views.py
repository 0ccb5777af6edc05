"""Marketer pages: programs read-only with their pacing; draft campaigns created and submitted for approval."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from campaigns.models import Campaign, CampaignStatus, Program
from campaigns.pacing import program_pacing
from campaigns.selectors import salesforce_account_url, salesforce_opportunity_url
from campaigns.services import CampaignServiceError, campaign_save, transition

# The pacing API's status codes, as a person reads them (the page shows words, the API keeps the codes).
PACING_LABELS = {"on_track": "On track", "under": "Under-pacing", "over": "Over-pacing"}
WORKFLOW_LABELS = dict(CampaignStatus.choices)


# A draft or a proposal awaiting approval spends nothing yet: calling it "under-pacing" alarmed people.
NOT_LIVE = {CampaignStatus.DRAFT, CampaignStatus.PENDING_APPROVAL}


def _labelled(row: dict[str, Any]) -> dict[str, Any]:
    """A pacing row (campaign or line item) with the words the page shows beside its codes."""
    workflow = row.get("workflow_status", "")
    live = workflow not in NOT_LIVE
    return {
        **row,
        "live": live,
        "pacing_label": PACING_LABELS.get(row.get("status", ""), row.get("status", "")) if live else "Not live yet",
        "workflow_label": WORKFLOW_LABELS.get(workflow, workflow),
    }


def _program_rows(today: dt.date) -> list[dict[str, Any]]:
    rows = []
    for program in Program.objects.order_by("-start_date", "name"):
        pacing = program_pacing(program, today)
        campaigns = [
            {**_labelled(c), "line_items": [_labelled(li) for li in c["line_items"]]} for c in pacing["campaigns"]
        ]
        rows.append(
            {
                "program": program,
                "pacing": {**pacing, "program": _labelled(pacing["program"]), "campaigns": campaigns},
                "salesforce_url": salesforce_opportunity_url(program.salesforce_opportunity_id),
            }
        )
    return rows


def programs(request: HttpRequest, *, draft: dict[str, str] | None = None, status: int = 200) -> HttpResponse:
    """The programs page; `draft` is a rejected proposal shown again as typed (with `status` 400)."""
    org = request.org  # type: ignore[attr-defined]
    today = timezone.localdate()
    context = {
        "rows": _program_rows(today),
        "today": today,
        "account_url": salesforce_account_url(getattr(org, "salesforce_account_id", "") or ""),
        "drafts": Campaign.objects.filter(status__in=[CampaignStatus.DRAFT, CampaignStatus.PENDING_APPROVAL]),
        "all_programs": Program.objects.order_by("name"),
        "draft": draft or {},
    }
    return render(request, "campaigns/programs.html", context, status=status)


def _day(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


# The proposal control an error is about (marked aria-invalid): the field a service or model error names, else
# the one a rule's code is about (the budget guard, the parent's flight).
_DRAFT_CONTROLS = {"name": "name", "budget": "budget", "start_date": "start", "end_date": "end", "end": "end"}
_CONTROL_OF_CODE = {"budget_exceeded": "budget", "flight_outside_parent": "start"}


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
    except CampaignServiceError as exc:
        error, code = str(exc), exc.code
        field = _DRAFT_CONTROLS.get(exc.details.get("field", ""), "") or _CONTROL_OF_CODE.get(code, "")
    except ValidationError as exc:  # model validation (empty name, duplicate name)
        error, code = "; ".join(exc.messages), "invalid"
        field = next((_DRAFT_CONTROLS[f] for f in getattr(exc, "error_dict", {}) if f in _DRAFT_CONTROLS), "name")
    else:
        messages.success(request, f"Draft {campaign.name!r} saved. Submit it when it is ready for approval.")
        return redirect("campaign-programs")
    # Shown again with what was typed (a redirect would lose it) and the error beside the form.
    typed = {key: request.POST.get(key, "") for key in ("program", "name", "budget", "start", "end")}
    return programs(request, draft={**typed, "error": error, "code": code, "field": field}, status=400)


@require_POST
def submit_draft(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    try:
        transition(obj=campaign, action="submit", actor=request.user)  # type: ignore[arg-type]
        messages.success(request, f"{campaign.name!r} was submitted for approval.")
    except CampaignServiceError as exc:
        messages.error(request, str(exc))
    return redirect("campaign-programs")
