"""create_line_item --org SLUG --campaign ID NAME --budget AMOUNT [--bid B] [--pricing-model cpm|cpcv] [--pacing even|asap]"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from campaigns.management.commands._orchestration import OrchestrationCommand, get_or_fail, parse_day
from campaigns.models import Campaign, LineItem, Pacing, PricingModel
from campaigns.services import CampaignServiceError, line_item_save


class Command(OrchestrationCommand):
    help = "Create a draft line item under a campaign (inside the campaign's budget and flight)."

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--campaign", type=int, required=True)
        parser.add_argument("--budget", required=True)
        parser.add_argument("--bid", default="0")
        parser.add_argument("--pricing-model", choices=PricingModel.values, default=PricingModel.CPM)
        parser.add_argument("--pacing", choices=Pacing.values, default=Pacing.EVEN)
        parser.add_argument("--creatives", default="")
        parser.add_argument("--external-id", default="", help="TTD line item id (REDS line_item_id)")
        parser.add_argument("--start")
        parser.add_argument("--end")

    def run(self, **options: Any) -> dict[str, Any]:
        org = self.resolve_orgs(options)[0]
        with self.in_org(org):
            campaign = get_or_fail(Campaign, options["campaign"], "campaign")
            li = LineItem(
                campaign=campaign,
                name=options["name"],
                budget=options["budget"],
                bid=options["bid"],
                pricing_model=options["pricing_model"],
                pacing=options["pacing"],
                creatives=options["creatives"],
                external_id=options["external_id"],
                start_date=parse_day(options["start"], "--start"),
                end_date=parse_day(options["end"], "--end"),
            )
            try:
                line_item_save(line_item=li, actor=None)
            except CampaignServiceError as exc:
                raise self.refuse(exc) from exc
        return {"org": org.slug, "id": li.pk, "budget": str(li.budget), "status": li.status}
