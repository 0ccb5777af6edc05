"""create_program --org SLUG NAME --budget AMOUNT [--start D] [--end D] [--currency C] [--salesforce-opportunity-id ID]"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from campaigns.management.commands._orchestration import OrchestrationCommand, parse_day
from campaigns.models import Program
from campaigns.services import CampaignServiceError, program_save


class Command(OrchestrationCommand):
    help = "Create a program (insertion order) above campaigns, or update the one with that name."

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--budget", required=True, help="total budget, for example 100000.00")
        parser.add_argument("--currency", default="USD")
        parser.add_argument("--start", help="flight start YYYY-MM-DD")
        parser.add_argument("--end", help="flight end YYYY-MM-DD")
        parser.add_argument("--salesforce-opportunity-id", default="")

    def run(self, **options: Any) -> dict[str, Any]:
        org = self.resolve_orgs(options)[0]
        with self.in_org(org):
            program = Program.objects.filter(name=options["name"]).first() or Program(name=options["name"])
            created = program.pk is None
            program.budget = options["budget"]
            program.currency = options["currency"]
            program.start_date = parse_day(options["start"], "--start")
            program.end_date = parse_day(options["end"], "--end")
            program.salesforce_opportunity_id = options["salesforce_opportunity_id"]
            try:
                program_save(program=program, actor=None)
            except CampaignServiceError as exc:
                raise self.refuse(exc) from exc
        return {"org": org.slug, "id": program.pk, "created": created, "budget": str(program.budget)}
