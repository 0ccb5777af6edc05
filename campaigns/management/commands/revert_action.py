"""revert_action --org SLUG ACTION_ID"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from campaigns.automation import revert_action
from campaigns.management.commands._orchestration import OrchestrationCommand, get_or_fail
from campaigns.models import AutomationAction
from campaigns.services import CampaignServiceError


class Command(OrchestrationCommand):
    help = "Reverse an automatic action (rule pause, pause at budget, reallocation), restoring what it changed."

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action_id", type=int)

    def run(self, **options: Any) -> dict[str, Any]:
        org = self.resolve_orgs(options)[0]
        with self.in_org(org):
            row = get_or_fail(AutomationAction, options["action_id"], "action")
            try:
                revert_action(action_row=row, actor=None)
            except CampaignServiceError as exc:
                raise self.refuse(exc) from exc
        return {"org": org.slug, "id": row.pk, "reverted": True}
