"""pacing --org SLUG --program ID [--as-of YYYY-MM-DD] [--check]"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone

from campaigns.management.commands._orchestration import OrchestrationCommand, get_or_fail, parse_day
from campaigns.models import Program
from campaigns.pacing import program_pacing


class Command(OrchestrationCommand):
    help = "Print a program's pacing; --check also raises alerts, pauses at budget and applies performance rules."

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--program", type=int, help="the program (default: all, with --check)")
        parser.add_argument("--as-of", help="the day spend counts up to (default today)")
        parser.add_argument("--check", action="store_true", help="alerts, e-mail, pause at budget, rules")

    def run(self, **options: Any) -> dict[str, Any]:
        org = self.resolve_orgs(options)[0]
        as_of = parse_day(options["as_of"], "--as-of") or timezone.localdate()
        out: dict[str, Any] = {"org": org.slug}
        with self.in_org(org):
            if options["program"]:
                out["pacing"] = program_pacing(get_or_fail(Program, options["program"], "program"), as_of)
            if options["check"]:
                from campaigns.tasks import check_org

                out["check"] = check_org(as_of.isoformat())
        return out

    def render(self, result: dict[str, Any]) -> str:
        lines = []
        if "pacing" in result:
            body = result["pacing"]
            p = body["program"]
            lines.append(f"{p['name']}: {p['spent']} of {p['budget']} {body['currency']} ({p['status']})")
            for c in body["campaigns"]:
                lines.append(
                    f"  {c['name']}: {c['spent']} / {c['budget']} expected {c['expected_to_date']} {c['status']}"
                )
                for li in c["line_items"]:
                    lines.append(f"    {li['name']}: {li['spent']} / {li['budget']} {li['status']}")
        if "check" in result:
            lines.append(", ".join(f"{k}: {v}" for k, v in result["check"].items()))
        return "\n".join(lines) or "nothing to do (name --program or --check)"
