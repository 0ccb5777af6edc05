"""Writes for programs, campaigns, line items and client settings.

Budget guard (orchestration): every write that creates a child or changes a budget locks the parent
row (`SELECT ... FOR UPDATE`) inside the transaction, then sums the siblings: two concurrent writers
queue on the lock and the second sees the first's committed row, so children never sum above their
parent. Locks are always taken parent first (program, then campaign), so writers never deadlock.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Sum

from campaigns.models import (
    Campaign,
    CampaignStatus,
    ClientSettings,
    CpmRate,
    LineItem,
    Program,
    Strategy,
    dates_ordered,
)
from campaigns.pacing import campaign_flight
from campaigns.selectors import client_settings
from p360.core import registry
from p360.core.audit.services import delete_with_audit, record
from p360.core.crypto import encrypt
from p360.core.jobs.dispatch import org_task
from tenants.selectors import current_org

if TYPE_CHECKING:
    from tenants.models import User


class CampaignServiceError(ValueError):
    """Bad input to a campaign service (shown to the user as is). `code` is the API error code."""

    code = "invalid"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}


class BudgetExceeded(CampaignServiceError):
    code = "budget_exceeded"


class FlightOutsideParent(CampaignServiceError):
    code = "flight_outside_parent"


class CurrencyMismatch(CampaignServiceError):
    code = "currency_mismatch"


class TransitionRefused(CampaignServiceError):
    code = "invalid_transition"


class NotAllowed(CampaignServiceError):
    code = "permission_denied"


CENT = Decimal("0.01")
MAX_MONEY = Decimal("1000000000000")  # 12 digits before the point (the columns hold 14 with 2 decimals)


def parse_money(value: Any, field: str = "budget") -> Decimal:
    """A non-negative amount with at most 2 decimals (a string or number; floats are refused as inexact)."""
    if isinstance(value, float):
        value = repr(value)
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise CampaignServiceError(f"{field} {value!r} is not a number", {"field": field}) from exc
    if not amount.is_finite() or amount < 0:
        raise CampaignServiceError(f"{field} must be a number of at least 0", {"field": field})
    if amount >= MAX_MONEY:  # before quantize: 1e400 cannot be quantized
        raise CampaignServiceError(f"{field} must be below {MAX_MONEY:,}", {"field": field})
    if amount != amount.quantize(CENT):
        raise CampaignServiceError(f"{field} has at most 2 decimal places", {"field": field})
    return amount.quantize(CENT)


def _currency(value: str) -> str:
    code = (value or "USD").strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise CampaignServiceError(f"currency {value!r} is not a 3-letter ISO code", {"field": "currency"})
    return code


def is_staff(actor: User | None) -> bool:
    """Commands (no actor), super admins and campaign managers; marketers are not."""
    from tenants.models import STAFF_ROLES

    return actor is None or getattr(actor, "role", None) in STAFF_ROLES


Flight = tuple[dt.date | None, dt.date | None]


def check_dates(start: dt.date | None, end: dt.date | None, *, name: str) -> None:
    """The date-order rule (`campaigns.models.dates_ordered`, also the tables' check constraint)."""
    if not dates_ordered(start, end):
        raise CampaignServiceError(f"{name}: end {end} is before start {start}", {"field": "end"})


def _check_flight(child: Flight, parent: Flight, *, child_name: str, parent_name: str) -> None:
    start, end = child
    p_start, p_end = parent
    check_dates(start, end, name=child_name)
    outside = (p_start and start and start < p_start) or (p_end and end and end > p_end)
    # A child without dates runs the parent's flight; a child with dates must sit inside it.
    if outside or (p_start and end and end < p_start) or (p_end and start and start > p_end):
        raise FlightOutsideParent(
            f"{child_name}'s flight {start or '...'} to {end or '...'} is outside {parent_name}'s "
            f"{p_start or '...'} to {p_end or '...'}",
            {"parent_start": p_start, "parent_end": p_end},
        )


def _over_budget(*, parent_label: str, parent_budget: Decimal, others: Decimal, asked: Decimal, currency: str) -> None:
    if others + asked > parent_budget:
        available = max(parent_budget - others, Decimal("0"))
        raise BudgetExceeded(
            f"{parent_label} has {available:,.2f} {currency} left of {parent_budget:,.2f}; {asked:,.2f} asked",
            {
                "parent_budget": str(parent_budget),
                "allocated": str(others),
                "requested": str(asked),
                "available": str(available),
                "currency": currency,
            },
        )


def fits_parent(
    *,
    child_name: str,
    flight: Flight,
    parent_name: str,
    parent_flight: Flight,
    parent_budget: Decimal,
    others: Decimal | None,
    asked: Decimal,
    currency: str,
) -> None:
    """The one rule for a child (campaign in a program, line item in a campaign) against its parent, which the
    caller has locked: its flight sits inside the parent's and the siblings plus `asked` stay within budget."""
    _check_flight(flight, parent_flight, child_name=child_name, parent_name=parent_name)
    _over_budget(
        parent_label=parent_name,
        parent_budget=parent_budget,
        others=others or Decimal("0"),
        asked=asked,
        currency=currency,
    )


def parent_holds_children(
    *,
    parent_name: str,
    kind: str,
    budget: Decimal,
    flight: Flight,
    currency: str,
    children: list[Any],
) -> None:
    """The reverse rule when a parent changes: its (locked) children still sum within its budget and sit
    inside its flight."""
    allocated = sum((c.budget for c in children), Decimal("0"))
    if allocated > budget:
        raise BudgetExceeded(
            f"{parent_name}: its {kind}s already hold {allocated:,.2f} {currency}; the budget cannot go below that",
            {"parent_budget": str(budget), "allocated": str(allocated), "currency": currency},
        )
    for child in children:
        _check_flight(
            (child.start_date, child.end_date),
            flight,
            child_name=f"{kind} {child.name!r}",
            parent_name=parent_name,
        )


def _program_snapshot(program: Program) -> dict[str, Any]:
    return {
        "name": program.name,
        "budget": str(program.budget),
        "currency": program.currency,
        "start_date": program.start_date,
        "end_date": program.end_date,
        "salesforce_opportunity_id": program.salesforce_opportunity_id,
    }


def _snapshot(campaign: Campaign) -> dict[str, Any]:
    return {
        "name": campaign.name,
        "program": campaign.program_id,
        "status": campaign.status,
        "start_date": campaign.start_date,
        "end_date": campaign.end_date,
        "budget": str(campaign.budget),
        "currency": campaign.currency,
    }


def line_item_snapshot(line_item: LineItem) -> dict[str, Any]:
    return {
        "name": line_item.name,
        "campaign": line_item.campaign_id,
        "status": line_item.status,
        "budget": str(line_item.budget),
        "currency": line_item.currency,
        "bid": str(line_item.bid),
        "pricing_model": line_item.pricing_model,
        "pacing": line_item.pacing,
        "creatives": line_item.creatives,
        "start_date": line_item.start_date,
        "end_date": line_item.end_date,
        "external_id": line_item.external_id,
        "auto_pause_at_budget": line_item.auto_pause_at_budget,
    }


@org_task
@transaction.atomic
def program_save(*, program: Program, actor: User | None) -> Program:
    """Create or update a program. Lowering its budget below its campaigns' sum, moving its flight so a
    campaign falls outside, or changing its currency under campaigns of another currency is refused."""
    if not is_staff(actor):
        raise NotAllowed("only campaign managers change programs")
    program.budget = parse_money(program.budget)
    program.currency = _currency(program.currency)
    check_dates(program.start_date, program.end_date, name=f"program {program.name!r}")
    created = program.pk is None
    before = None
    if not created:
        current = Program.objects.select_for_update().get(pk=program.pk)
        before = _program_snapshot(current)
        children = list(Campaign.objects.filter(program=program).select_for_update())
        parent_holds_children(
            parent_name=f"program {program.name!r}",
            kind="campaign",
            budget=program.budget,
            flight=(program.start_date, program.end_date),
            currency=program.currency,
            children=children,
        )
        for child in children:
            if child.currency != program.currency:
                raise CurrencyMismatch(f"campaign {child.name!r} is in {child.currency}, not {program.currency}")
    program.full_clean()
    program.save()
    record(
        action="program.created" if created else "program.updated",
        actor=actor,
        org=current_org(),
        entity=program,
        before=before,
        after=_program_snapshot(program),
    )
    return program


@org_task
@transaction.atomic
def campaign_save(*, campaign: Campaign, actor: User | None) -> Campaign:
    """Create or update a campaign (audited), inside its program's budget, flight and currency.

    Marketers only create and edit drafts (the workflow's submit asks a manager to approve them)."""
    created = campaign.pk is None
    campaign.budget = parse_money(campaign.budget)
    campaign.currency = _currency(campaign.currency)
    program = None
    if campaign.program_id:
        # The parent first (lock order program -> campaign), then the row itself.
        program = Program.objects.select_for_update().get(pk=campaign.program_id)
        campaign.program = program
    current = None if created else Campaign.objects.select_for_update().get(pk=campaign.pk)
    if not is_staff(actor) and (
        campaign.status != CampaignStatus.DRAFT or (current and current.status != CampaignStatus.DRAFT)
    ):
        raise NotAllowed("marketers create and edit draft campaigns only")
    before = None if current is None else _snapshot(current)
    if program is not None:
        if campaign.currency != program.currency:
            if created and campaign.currency == "USD":
                campaign.currency = program.currency  # the default follows the program
            else:
                raise CurrencyMismatch(f"the campaign is in {campaign.currency}; its program in {program.currency}")
        fits_parent(
            child_name=f"campaign {campaign.name!r}",
            flight=(campaign.start_date, campaign.end_date),
            parent_name=f"program {program.name!r}",
            parent_flight=(program.start_date, program.end_date),
            parent_budget=program.budget,
            others=Campaign.objects.filter(program=program).exclude(pk=campaign.pk).aggregate(s=Sum("budget"))["s"],
            asked=campaign.budget,
            currency=program.currency,
        )
    else:
        check_dates(campaign.start_date, campaign.end_date, name=f"campaign {campaign.name!r}")
    if current is not None:
        parent_holds_children(
            parent_name=f"campaign {campaign.name!r}",
            kind="line item",
            budget=campaign.budget,
            flight=campaign_flight(campaign),
            currency=campaign.currency,
            children=list(LineItem.objects.filter(campaign=campaign)),
        )
    campaign.full_clean(exclude=["audiences"])
    campaign.save()
    record(
        action="campaign.created" if created else "campaign.updated",
        actor=actor,
        org=current_org(),
        entity=campaign,
        before=before,
        after=_snapshot(campaign),
    )
    return campaign


@org_task
@transaction.atomic
def line_item_save(*, line_item: LineItem, actor: User | None, action: str = "") -> LineItem:
    """Create or update a line item (audited) inside its campaign's budget, flight and currency; link the
    campaign's strategies named by its external id (REDS line items) so their spend rolls up to it."""
    created = line_item.pk is None
    line_item.budget = parse_money(line_item.budget)
    line_item.bid = parse_money(line_item.bid, "bid") if line_item.bid is not None else Decimal("0")
    line_item.currency = _currency(line_item.currency)
    campaign = Campaign.objects.select_for_update(of=("self",)).select_related("program").get(pk=line_item.campaign_id)
    line_item.campaign = campaign
    current = None if created else LineItem.objects.select_for_update().get(pk=line_item.pk)
    if not is_staff(actor) and (
        line_item.status != CampaignStatus.DRAFT or (current and current.status != CampaignStatus.DRAFT)
    ):
        raise NotAllowed("marketers create and edit draft line items only")
    if line_item.currency != campaign.currency:
        if created and line_item.currency == "USD":
            line_item.currency = campaign.currency
        else:
            raise CurrencyMismatch(f"the line item is in {line_item.currency}; its campaign in {campaign.currency}")
    fits_parent(
        child_name=f"line item {line_item.name!r}",
        flight=(line_item.start_date, line_item.end_date),
        parent_name=f"campaign {campaign.name!r}",
        parent_flight=campaign_flight(campaign),
        parent_budget=campaign.budget,
        others=LineItem.objects.filter(campaign=campaign).exclude(pk=line_item.pk).aggregate(s=Sum("budget"))["s"],
        asked=line_item.budget,
        currency=campaign.currency,
    )
    line_item.full_clean()
    line_item.save()
    keys = [key for key in (line_item.external_id, line_item.name) if key]
    Strategy.objects.filter(campaign=campaign, line_item__isnull=True, name__in=keys).update(line_item=line_item)
    record(
        action=action or ("line_item.created" if created else "line_item.updated"),
        actor=actor,
        org=current_org(),
        entity=line_item,
        before=None if current is None else line_item_snapshot(current),
        after=line_item_snapshot(line_item),
    )
    return line_item


@org_task
@transaction.atomic
def line_item_delete(*, line_item: LineItem, actor: User | None) -> None:
    delete_with_audit(line_item, actor=actor, org=current_org(), before=line_item_snapshot(line_item))


# --- Status workflow: draft -> pending approval -> active <-> paused -> completed ------------------

S = CampaignStatus
TRANSITIONS: dict[str, tuple[frozenset[str], str, bool]] = {
    # action: (from statuses, to status, staff only)
    "submit": (frozenset({S.DRAFT}), S.PENDING_APPROVAL, False),
    "approve": (frozenset({S.PENDING_APPROVAL}), S.ACTIVE, True),
    "launch": (frozenset({S.DRAFT, S.PENDING_APPROVAL}), S.ACTIVE, True),
    "reject": (frozenset({S.PENDING_APPROVAL}), S.DRAFT, True),
    "pause": (frozenset({S.ACTIVE}), S.PAUSED, True),
    "resume": (frozenset({S.PAUSED}), S.ACTIVE, True),
    "complete": (frozenset({S.ACTIVE, S.PAUSED}), S.COMPLETED, True),
}


@org_task
@transaction.atomic
def transition(*, obj: Campaign | LineItem, action: str, actor: User | None, reason: str = "") -> Campaign | LineItem:
    """Move a campaign or line item one step along the workflow (audited). Resuming a line item that an
    automatic action paused reverses that action instead, restoring exactly what it changed."""
    if action not in TRANSITIONS:
        raise TransitionRefused(f"unknown action {action!r}; use one of {', '.join(TRANSITIONS)}")
    allowed_from, target, staff_only = TRANSITIONS[action]
    if staff_only and not is_staff(actor):
        raise NotAllowed(f"only campaign managers may {action}")
    model = type(obj)
    locked = model.objects.select_for_update().get(pk=obj.pk)
    if locked.status not in allowed_from:
        raise TransitionRefused(
            f"cannot {action} a {locked.get_status_display().lower()} {model._meta.verbose_name}",
            {"status": locked.status, "allowed_from": sorted(allowed_from)},
        )
    if action == "resume" and isinstance(locked, LineItem):
        from campaigns.automation import open_pause_for, revert_action

        pause = open_pause_for(locked)
        if pause is not None:
            revert_action(action_row=pause, actor=actor)
            locked.refresh_from_db()
            return locked
    kind = "line_item" if isinstance(locked, LineItem) else "campaign"
    before = locked.status
    locked.status = target
    locked.save(update_fields=["status", "updated_at"])
    record(
        action=f"{kind}.{action}",
        actor=actor,
        org=current_org(),
        entity=locked,
        before={"status": before},
        after={"status": target, **({"reason": reason} if reason else {})},
    )
    return locked


@org_task
@transaction.atomic
def duplicate_campaign(*, campaign: Campaign, actor: User | None) -> Campaign:
    """A draft copy with its line items (budgets included, so the program's guard applies to the copy)."""
    name = f"{campaign.name} (copy)"
    n = 2
    while Campaign.objects.filter(name=name, source=campaign.source).exists():
        name, n = f"{campaign.name} (copy {n})", n + 1
    copy = Campaign(
        program_id=campaign.program_id,
        name=name,
        source=campaign.source,
        status=CampaignStatus.DRAFT,
        start_date=campaign.start_date,
        end_date=campaign.end_date,
        budget=campaign.budget,
        currency=campaign.currency,
    )
    campaign_save(campaign=copy, actor=actor)
    copy.audiences.set(campaign.audiences.all())
    for li in campaign.line_items.all():
        line_item_save(
            line_item=LineItem(
                campaign=copy,
                name=li.name,
                budget=li.budget,
                currency=li.currency,
                bid=li.bid,
                pricing_model=li.pricing_model,
                pacing=li.pacing,
                creatives=li.creatives,
                start_date=li.start_date,
                end_date=li.end_date,
            ),
            actor=actor,
        )
    return copy


@org_task
@transaction.atomic
def campaign_delete(*, campaign: Campaign, actor: User | None) -> None:
    """Delete a campaign (its strategies and daily metrics go with it: ORM cascade) and, through the
    "campaign_deleted" hook, what other apps derived from it (reporting's rollup), in the same transaction."""
    campaign_id = campaign.pk
    delete_with_audit(campaign, actor=actor, org=current_org(), before=_snapshot(campaign))
    registry.call_hooks("campaign_deleted", campaign_id=campaign_id)


# --- Client settings: CPM rates by effective date, currency, source settings -----------------------


@org_task
@transaction.atomic
def cpm_set(
    *, cpm: Decimal | str, effective_date: dt.date, currency: str = "USD", actor: User | None, note: str = ""
) -> CpmRate:
    """The org's CPM from `effective_date` on. History is kept: a new date adds a rate; the same date
    replaces that day's rate (audited with the old value). Metrics already loaded keep their spend
    until their source and date are re-run."""
    try:
        value = Decimal(str(cpm))
    except (InvalidOperation, ValueError) as exc:
        raise CampaignServiceError(f"CPM {cpm!r} is not a number") from exc
    if not value.is_finite() or value <= 0:
        raise CampaignServiceError("CPM must be a positive number")
    if value != value.quantize(Decimal("0.0001")):
        raise CampaignServiceError("CPM has at most 4 decimal places")
    if value >= Decimal("1000000"):
        raise CampaignServiceError("CPM must be below 1,000,000")
    value = value.quantize(Decimal("0.0001"))  # CPM: 4 decimals (A.1)
    currency = (currency or "USD").strip().upper()
    if len(currency) != 3 or not currency.isalpha():
        raise CampaignServiceError(f"currency {currency!r} is not a 3-letter ISO code")
    existing = CpmRate.objects.filter(effective_date=effective_date).first()
    before = None if existing is None else {"cpm": str(existing.cpm), "currency": existing.currency}
    rate = existing or CpmRate(effective_date=effective_date)
    rate.cpm, rate.currency, rate.note = value, currency, note
    rate.created_by_email = getattr(actor, "email", "") or "cli"
    rate.save()
    settings_row = client_settings()
    if settings_row.currency != currency:
        settings_row.currency = currency
        settings_row.save(update_fields=["currency", "updated_at"])
    record(
        action="cpm.set",
        actor=actor,
        org=current_org(),
        entity=rate,
        before=before,
        after={"cpm": str(value), "currency": currency, "effective_date": effective_date},
    )
    return rate


@org_task
@transaction.atomic
def client_settings_save(
    *, settings_row: ClientSettings, actor: User | None, vibe_api_key: str | None = None
) -> ClientSettings:
    """Save the org's settings; a new Vibe API key is stored encrypted (never logged or audited)."""

    if vibe_api_key:
        settings_row.vibe_api_key_encrypted = encrypt(vibe_api_key.strip())
    settings_row.full_clean()
    settings_row.save()
    record(
        action="client_settings.saved",
        actor=actor,
        org=current_org(),
        entity=settings_row,
        after={
            "currency": settings_row.currency,
            "alert_emails": settings_row.alert_emails,
            "surfside_enabled": settings_row.surfside_enabled,
            "surfside_prefix": settings_row.surfside_prefix,
            "vibe_enabled": settings_row.vibe_enabled,
            "vibe_advertiser_id": settings_row.vibe_advertiser_id,
            "vibe_api_key_changed": bool(vibe_api_key),
        },
    )
    return settings_row
