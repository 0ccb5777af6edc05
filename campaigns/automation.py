"""Automatic actions (writes): performance rules, pause at budget, budget reallocation, pacing alerts.

Every action is an `AutomationAction` row holding exactly what it changed (before and after) plus an
audit event; `revert_action` puts the before values back, refusing if someone changed the object since
(nothing is silently overwritten). Resuming a line item paused by a rule or at budget reverts that
action, so its previous state comes back exactly.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from campaigns.models import (
    AutomationAction,
    AutomationKind,
    Campaign,
    CampaignStatus,
    LineItem,
    PacingAlert,
    PerformanceRule,
    Program,
    RuleMetric,
)
from campaigns.pacing import PACING_LABELS, Pace, line_item_paces, money, program_pacing
from campaigns.services import CampaignServiceError, NotAllowed, is_staff
from p360.core import formatting
from p360.core.audit.services import record
from p360.core.jobs.dispatch import org_task
from tenants.selectors import current_org

if TYPE_CHECKING:
    from tenants.models import User

logger = logging.getLogger(__name__)
CENT = Decimal("0.01")


def _email(actor: User | None) -> str:
    return getattr(actor, "email", "") or "system"


def _state(li: LineItem) -> dict[str, Any]:
    return {"status": li.status, "budget": str(li.budget)}


def _record_action(
    *, kind: str, campaign: Campaign, reason: str, changes: list[dict[str, Any]], actor: User | None, rule: Any = None
) -> AutomationAction:
    row = AutomationAction.objects.create(
        kind=kind, campaign=campaign, rule=rule, reason=reason[:500], changes=changes, actor_email=_email(actor)
    )
    record(
        action=f"automation.{kind}",
        actor=actor,
        org=current_org(),
        entity=row,
        before={str(c["id"]): c["before"] for c in changes},
        after={"reason": reason, **{str(c["id"]): c["after"] for c in changes}},
    )
    return row


def _pause(li: LineItem, *, kind: str, reason: str, actor: User | None, rule: Any = None) -> AutomationAction:
    before = _state(li)
    li.status = CampaignStatus.PAUSED
    li.save(update_fields=["status", "updated_at"])
    return _record_action(
        kind=kind,
        campaign=li.campaign,
        reason=reason,
        rule=rule,
        actor=actor,
        changes=[{"model": "line_item", "id": li.pk, "before": before, "after": _state(li)}],
    )


def open_pause_for(li: LineItem) -> AutomationAction | None:
    """The latest unreverted automatic pause of this line item, if it is what paused it."""
    for row in AutomationAction.objects.filter(
        kind__in=[AutomationKind.RULE_PAUSE, AutomationKind.BUDGET_PAUSE],
        reverted_at__isnull=True,
        campaign=li.campaign,
    ):
        if any(c["model"] == "line_item" and c["id"] == li.pk for c in row.changes):
            return row
    return None


@org_task
@transaction.atomic
def revert_action(*, action_row: AutomationAction, actor: User | None) -> AutomationAction:
    """Put back exactly what the action changed. Refused when an object no longer holds the action's
    `after` values (someone changed it since): reverting then would overwrite their change."""
    if not is_staff(actor):
        raise NotAllowed("only campaign managers revert automatic actions")
    row = AutomationAction.objects.select_for_update().get(pk=action_row.pk)
    if row.reverted_at is not None:
        raise CampaignServiceError("this action was already reverted")
    # Lock the campaign first (the budget guard's order), then the line items.
    Campaign.objects.select_for_update().get(pk=row.campaign_id)
    items = {li.pk: li for li in LineItem.objects.select_for_update().filter(pk__in=[c["id"] for c in row.changes])}
    for change in row.changes:
        li = items.get(change["id"])
        if li is None:
            raise CampaignServiceError(f"line item {change['id']} no longer exists")
        if _state(li) != change["after"]:
            raise CampaignServiceError(
                f"line item {li.name!r} changed since ({_state(li)} instead of {change['after']}); not reverted",
                {"line_item": li.pk},
            )
    for change in row.changes:
        li = items[change["id"]]
        li.status = change["before"]["status"]
        li.budget = Decimal(change["before"]["budget"])
        li.save(update_fields=["status", "budget", "updated_at"])
    row.reverted_at = timezone.now()
    row.reverted_by_email = _email(actor)
    row.save(update_fields=["reverted_at", "reverted_by_email"])
    record(
        action=f"automation.{row.kind}.reverted",
        actor=actor,
        org=current_org(),
        entity=row,
        before={str(c["id"]): c["after"] for c in row.changes},
        after={str(c["id"]): c["before"] for c in row.changes},
    )
    return row


# --- Performance rules ---------------------------------------------------------------------------


def rule_misses(rule: PerformanceRule, pace_row: Pace) -> str | None:
    """Why this line item misses the rule (None when it does not, or has not spent `min_spend` yet)."""
    figures = pace_row.figures
    if figures.spend < rule.min_spend:
        return None
    if rule.metric == RuleMetric.CPA:
        cpa = figures.cpa
        if cpa is None:  # spent the minimum without a single conversion: CPA is unbounded
            return f"no conversion after {money(figures.spend)} spent (CPA target {rule.target})"
        return f"CPA {cpa:.4f} above target {rule.target}" if cpa > rule.target else None
    ctr = figures.ctr
    if ctr is None or ctr < rule.target:
        return f"CTR {'n/a' if ctr is None else f'{ctr:.6f}'}% below target {rule.target}%"
    return None


@org_task
@transaction.atomic
def apply_rules(*, campaign: Campaign, as_of: dt.date, actor: User | None) -> list[AutomationAction]:
    """Pause the campaign's active line items that miss one of its active rules (audited, reversible)."""
    rules = list(campaign.rules.filter(active=True))
    if not rules:
        return []
    Campaign.objects.select_for_update().get(pk=campaign.pk)
    paces = line_item_paces([campaign], as_of)
    done: list[AutomationAction] = []
    for li in LineItem.objects.select_for_update().filter(campaign=campaign, status=CampaignStatus.ACTIVE):
        for rule in rules:
            why = rule_misses(rule, paces[li.pk])
            if why:
                done.append(
                    _pause(li, kind=AutomationKind.RULE_PAUSE, reason=f"{li.name}: {why}", actor=actor, rule=rule)
                )
                break
    return done


@org_task
@transaction.atomic
def pause_over_budget(*, as_of: dt.date, actor: User | None = None) -> list[AutomationAction]:
    """Pause active line items with `auto_pause_at_budget` whose spend passed their budget."""
    done: list[AutomationAction] = []
    campaigns = list(
        Campaign.objects.filter(line_items__auto_pause_at_budget=True).distinct().select_related("program")
    )
    paces = line_item_paces(campaigns, as_of)
    for li in LineItem.objects.select_for_update().filter(
        pk__in=list(paces), status=CampaignStatus.ACTIVE, auto_pause_at_budget=True
    ):
        spent = paces[li.pk].figures.spend
        if spent > li.budget:
            reason = f"{li.name}: spent {money(spent)} of a {money(li.budget)} budget"
            done.append(_pause(li, kind=AutomationKind.BUDGET_PAUSE, reason=reason, actor=actor))
    return done


# --- Reallocation --------------------------------------------------------------------------------


@dataclass
class Move:
    source: LineItem
    target: LineItem
    amount: Decimal
    why: str

    def as_json(self) -> dict[str, Any]:
        return {
            "from": {"id": self.source.pk, "name": self.source.name},
            "to": {"id": self.target.pk, "name": self.target.name},
            "amount": money(self.amount),
            "why": self.why,
        }


def _score(p: Pace) -> Decimal | None:
    """Lower is better: CPA; line items without conversions yet are not ranked."""
    return p.figures.cpa


def suggest_reallocation(campaign: Campaign, as_of: dt.date, *, share: Decimal = Decimal("0.5")) -> list[Move]:
    """Move `share` of the worst line item's unspent budget to the best one (by CPA), when both are active
    and ranked. The campaign's total does not change, so its budget guard holds."""
    paces = line_item_paces([campaign], as_of)
    items = {li.pk: li for li in campaign.line_items.filter(status=CampaignStatus.ACTIVE)}
    ranked = sorted(
        ((score, pk) for pk, p in paces.items() if pk in items and (score := _score(p)) is not None),
        key=lambda pair: (pair[0], pair[1]),
    )
    if len(ranked) < 2 or ranked[0][0] == ranked[-1][0]:
        return []
    best, worst = items[ranked[0][1]], items[ranked[-1][1]]
    unspent = max(worst.budget - paces[worst.pk].figures.spend, Decimal("0"))
    amount = (unspent * share).quantize(CENT, rounding=ROUND_DOWN)
    if amount <= 0:
        return []
    why = f"CPA {ranked[-1][0]:.2f} (worst) -> {ranked[0][0]:.2f} (best)"
    return [Move(worst, best, amount, why)]


@org_task
@transaction.atomic
def apply_reallocation(
    *, campaign: Campaign, moves: list[dict[str, Any]], actor: User | None, as_of: dt.date | None = None
) -> AutomationAction:
    """Apply reviewed moves [{"from": id, "to": id, "amount": "12.34"}] in one step (audited, reversible).
    A source never drops below what it has spent; the campaign's total is unchanged."""
    from campaigns.services import parse_money

    if not is_staff(actor):
        raise NotAllowed("only campaign managers reallocate budgets")
    if not moves:
        raise CampaignServiceError("nothing to apply")
    Campaign.objects.select_for_update().get(pk=campaign.pk)
    ids = {int(m["from"]) for m in moves} | {int(m["to"]) for m in moves}
    items = {li.pk: li for li in LineItem.objects.select_for_update().filter(pk__in=ids, campaign=campaign)}
    if set(items) != ids:
        raise CampaignServiceError("every line item of a move must belong to this campaign")
    befores = {pk: _state(li) for pk, li in items.items()}
    paces = line_item_paces([campaign], as_of or timezone.localdate())
    for move in moves:
        amount = parse_money(move["amount"], "amount")
        source, target = items[int(move["from"])], items[int(move["to"])]
        if source.pk == target.pk or amount <= 0:
            raise CampaignServiceError("a move takes a positive amount from one line item to another")
        floor = paces[source.pk].figures.spend.quantize(CENT)
        if source.budget - amount < floor:
            raise CampaignServiceError(
                f"{source.name!r} has spent {money(floor)}: at most {money(max(source.budget - floor, Decimal(0)))} "
                "can move",
                {"line_item": source.pk},
            )
        source.budget -= amount
        target.budget += amount
    for li in items.values():
        li.save(update_fields=["budget", "updated_at"])
    changes = [
        {"model": "line_item", "id": pk, "before": befores[pk], "after": _state(li)}
        for pk, li in sorted(items.items())
        if befores[pk] != _state(li)
    ]
    reason = "; ".join(f"{m['amount']} from {items[int(m['from'])].name} to {items[int(m['to'])].name}" for m in moves)
    return _record_action(
        kind=AutomationKind.REALLOCATION, campaign=campaign, reason=reason, changes=changes, actor=actor
    )


# --- Pacing alerts (dashboard and email) -------------------------------------------------------------


def _recipients() -> list[str]:
    from campaigns.selectors import client_settings

    return [a.strip() for a in client_settings().alert_emails.split(",") if a.strip()]


def _alert_message(
    program: Program, campaign_name: str, line_item: dict[str, Any] | None, row: dict[str, Any], as_of: dt.date
) -> str:
    """An alert as the people it is e-mailed to read it: money and dates as the pages show them
    ("spent $76.56 of $6,000.00, expected $300.00 by 10 Nov 2026"), the pace in words."""
    path = f"{program.name} / {campaign_name}" + (f" / {line_item['name']}" if line_item else "")
    kind = "Line item" if line_item else "Campaign"
    pace = PACING_LABELS.get(row["status"], row["status"]).lower()
    amounts = {key: formatting.money(row[key], program.currency) for key in ("spent", "budget", "expected_to_date")}
    return (
        f"{path}: {kind} {pace} (spent {amounts['spent']} of {amounts['budget']},"
        f" expected {amounts['expected_to_date']} by {formatting.day(as_of)})"
    )


@org_task
def check_pacing(*, as_of: dt.date, actor: User | None = None) -> dict[str, int]:
    """Raise an alert (once per object, day and status) for every active campaign or line item that is
    over or under pace, e-mail the org's alert recipients about the new ones, then pause line items
    that passed their budget where asked. Safe to run twice."""
    new: list[PacingAlert] = []
    for program in Program.objects.all():
        body = program_pacing(program, as_of)
        for c in body["campaigns"]:
            candidates = [(c, None)] + [(li, li["id"]) for li in c["line_items"]]
            for row, li_id in candidates:
                if row["workflow_status"] != CampaignStatus.ACTIVE or row["status"] == "on_track":
                    continue
                message = _alert_message(program, c["name"], row if li_id else None, row, as_of)
                try:
                    with transaction.atomic():
                        alert = PacingAlert.objects.create(
                            campaign_id=c["id"], line_item_id=li_id, day=as_of, status=row["status"], message=message
                        )
                except IntegrityError:
                    continue  # already raised today
                new.append(alert)
    recipients = _recipients()
    if new and recipients:
        org = current_org()
        subject = f"P360 pacing: {len(new)} alert(s) for {org.name if org else 'your organisation'}"
        body_text = "\n".join(a.message for a in new)
        send_mail(subject, body_text, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=False)
        PacingAlert.objects.filter(pk__in=[a.pk for a in new]).update(emailed=True)
    paused = pause_over_budget(as_of=as_of, actor=actor)
    return {"alerts": len(new), "emailed": len(recipients) if new else 0, "paused": len(paused)}
