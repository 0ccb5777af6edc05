"""Marketer pages: programs read-only with their pacing; draft campaigns created and submitted for approval."""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from campaigns.models import Campaign, CampaignStatus, Program
from campaigns.pacing import labelled_pacing, program_pacing
from campaigns.selectors import salesforce_account_url, salesforce_opportunity_url
from campaigns.services import CampaignServiceError, campaign_save, transition
from p360.core import formatting


def _program_rows(today: dt.date) -> list[dict[str, Any]]:
    rows = []
    for program in Program.objects.order_by("-start_date", "name"):
        rows.append(
            {
                "program": program,
                "pacing": labelled_pacing(program_pacing(program, today)),
                "salesforce_url": salesforce_opportunity_url(program.salesforce_opportunity_id),
            }
        )
    return rows


# A rejected proposal, kept in the session for the page it redirects to (POST, redirect, GET: a reload of that
# page shows it again as typed without sending it again). Only the latest one is kept.
REJECTED_DRAFT = "campaigns.rejected_draft"


def programs(request: HttpRequest) -> HttpResponse:
    """The programs page; `?draft=<token>` shows the rejected proposal of that token again, as typed, with its error."""
    org = request.org  # type: ignore[attr-defined]
    kept = request.session.get(REJECTED_DRAFT) or {}
    asked = request.GET.get("draft", "")
    # the proposal is the org's it was typed in (a user of several orgs has one session)
    draft = kept if asked and kept.get("token") == asked and kept.get("org") == org.schema_name else {}
    today = timezone.localdate()
    context = {
        "rows": _program_rows(today),
        "today": today,
        "account_url": salesforce_account_url(getattr(org, "salesforce_account_id", "") or ""),
        "drafts": Campaign.objects.filter(status__in=[CampaignStatus.DRAFT, CampaignStatus.PENDING_APPROVAL]),
        "all_programs": Program.objects.order_by("name"),
        "draft": draft,
    }
    return render(request, "campaigns/programs.html", context)


def _day(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


# The proposal control an error is about (marked aria-invalid): the field a service or model error names, else
# the one a rule's code is about (the budget guard, the parent's flight).
_DRAFT_CONTROLS = {"name": "name", "budget": "budget", "start_date": "start", "end_date": "end", "end": "end"}
_CONTROL_OF_CODE = {"budget_exceeded": "budget", "flight_outside_parent": "start"}


def _draft_words(exc: CampaignServiceError, program: Program) -> str:
    """A refusal in the page's words: the budget guard's figures as money ($114,400.00, not 114,400.00 USD);
    other refusals as the service wrote them (the API keeps its message)."""
    details = exc.details
    if exc.code == "budget_exceeded" and {"available", "parent_budget", "requested"} <= set(details):
        currency = details.get("currency")
        left, total, asked = (
            formatting.money(details[k], currency) for k in ("available", "parent_budget", "requested")
        )
        return (
            f"The budget is more than “{program.name}” has left: {left} of its {total} remain, and {asked} was asked."
        )
    return str(exc)


def create_draft(request: HttpRequest) -> HttpResponse:
    """A marketer's draft campaign under a program (the budget guard applies as everywhere).

    Saved or rejected, the answer is a redirect to the programs page (303): a reload there never sends the
    proposal again. A rejected one comes back as typed, with its error, through the session."""
    if request.method != "POST":  # a bookmarked or reloaded /drafts/ URL: the page the form lives on
        return redirect("campaign-programs")
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
        error, code = _draft_words(exc, program), exc.code
        field = _DRAFT_CONTROLS.get(exc.details.get("field", ""), "") or _CONTROL_OF_CODE.get(code, "")
    except ValidationError as exc:  # model validation (empty name, duplicate name)
        error, code = "; ".join(exc.messages), "invalid"
        field = next((_DRAFT_CONTROLS[f] for f in getattr(exc, "error_dict", {}) if f in _DRAFT_CONTROLS), "name")
    else:
        request.session.pop(REJECTED_DRAFT, None)
        messages.success(request, f"Draft {campaign.name!r} saved. Submit it when it is ready for approval.")
        return redirect("campaign-programs")
    # Shown again with what was typed and the error beside the form, on the page a reload may repeat safely.
    typed = {key: request.POST.get(key, "")[:300] for key in ("program", "name", "budget", "start", "end")}
    token = secrets.token_urlsafe(9)
    org = request.org  # type: ignore[attr-defined]
    request.session[REJECTED_DRAFT] = {
        **typed,
        "error": error,
        "code": code,
        "field": field,
        "token": token,
        "org": org.schema_name,
    }
    response = redirect(f"{reverse('campaign-programs')}?{urlencode({'draft': token})}#draft-error")
    response.status_code = 303  # See Other: the browser follows with a GET
    return response


@require_POST
def submit_draft(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    try:
        transition(obj=campaign, action="submit", actor=request.user)  # type: ignore[arg-type]
        messages.success(request, f"{campaign.name!r} was submitted for approval.")
    except CampaignServiceError as exc:
        messages.error(request, str(exc))
    return redirect("campaign-programs")
