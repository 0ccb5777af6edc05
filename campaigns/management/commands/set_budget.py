"""set_budget --org SLUG (--program ID | --campaign ID | --line-item ID) AMOUNT"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from campaigns.management.commands._orchestration import OrchestrationCommand, get_or_fail
from campaigns.models import Campaign, LineItem, Program
from campaigns.services import CampaignServiceError, campaign_save, line_item_save, program_save


class Command(OrchestrationCommand):
    help = "Change a program's, campaign's or line item's budget (refused when children would exceed a parent)."

    def add_command_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--program", type=int)
        target.add_argument("--campaign", type=int)
        target.add_argument("--line-item", type=int)
        parser.add_argument("amount", help="the new budget, for example 25000.00")

    def run(self, **options: Any) -> dict[str, Any]:
        org = self.resolve_orgs(options)[0]
        with self.in_org(org):
            try:
                if options["program"]:
                    obj: Any = get_or_fail(Program, options["program"], "program")
                    obj.budget = options["amount"]
                    program_save(program=obj, actor=None)
                elif options["campaign"]:
                    obj = get_or_fail(Campaign, options["campaign"], "campaign")
                    obj.budget = options["amount"]
                    campaign_save(campaign=obj, actor=None)
                else:
                    obj = get_or_fail(LineItem, options["line_item"], "line item")
                    obj.budget = options["amount"]
                    line_item_save(line_item=obj, actor=None)
            except CampaignServiceError as exc:
                raise self.refuse(exc) from exc
        return {"org": org.slug, "id": obj.pk, "budget": str(obj.budget)}
