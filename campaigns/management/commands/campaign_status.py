"""campaign_status --org SLUG (--campaign ID | --line-item ID) ACTION"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from campaigns.management.commands._orchestration import OrchestrationCommand, get_or_fail
from campaigns.models import Campaign, LineItem
from campaigns.services import TRANSITIONS, CampaignServiceError, transition


class Command(OrchestrationCommand):
    help = "Move a campaign or line item along the workflow: " + ", ".join(TRANSITIONS) + "."

    def add_command_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--campaign", type=int)
        target.add_argument("--line-item", type=int)
        parser.add_argument("action", choices=list(TRANSITIONS))
        parser.add_argument("--reason", default="")

    def run(self, **options: Any) -> dict[str, Any]:
        org = self.resolve_orgs(options)[0]
        with self.in_org(org):
            if options["campaign"]:
                obj: Any = get_or_fail(Campaign, options["campaign"], "campaign")
            else:
                obj = get_or_fail(LineItem, options["line_item"], "line item")
            try:
                done = transition(obj=obj, action=options["action"], actor=None, reason=options["reason"])
            except CampaignServiceError as exc:
                raise self.refuse(exc) from exc
        return {"org": org.slug, "id": done.pk, "status": done.status}
