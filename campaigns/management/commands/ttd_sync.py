"""ttd_sync --org SLUG [--campaign ID]... [--force]"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from campaigns.management.commands._orchestration import OrchestrationCommand, get_or_fail
from campaigns.models import Campaign, CampaignStatus
from campaigns.ttd import TtdError, sync_campaign
from p360.core.commands import CommandFailed


class Command(OrchestrationCommand):
    help = (
        "Sync campaigns and their line items to TTD campaigns and ad groups (unchanged ones send nothing; "
        "a budget changed at TTD is reported as drift and not overwritten unless --force)."
    )

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--campaign", type=int, action="append", help="a campaign id (default: all active)")
        parser.add_argument("--force", action="store_true", help="overwrite drift at TTD with the portal's values")

    def run(self, **options: Any) -> dict[str, Any]:
        org = self.resolve_orgs(options)[0]
        results = []
        with self.in_org(org):
            if options["campaign"]:
                campaigns = [get_or_fail(Campaign, pk, "campaign") for pk in options["campaign"]]
            else:
                campaigns = list(Campaign.objects.filter(status=CampaignStatus.ACTIVE))
            for campaign in campaigns:
                try:
                    logs = sync_campaign(campaign=campaign, actor=None, force=options["force"])
                except TtdError as exc:
                    raise CommandFailed(str(exc)) from exc
                results += [
                    {"object": log.object_type, "id": log.object_id, "action": log.action, "message": log.message}
                    for log in logs
                ]
        return {"org": org.slug, "results": results}

    def render(self, result: dict[str, Any]) -> str:
        lines = [f"{r['object']} {r['id']}: {r['action']} {r['message']}" for r in result["results"]]
        return "\n".join(lines) or "nothing to sync"
