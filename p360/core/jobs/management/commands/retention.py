"""`retention`: apply document 004's retention (issue 16), or with --dry-run only count what would go.

manage.py retention --dry-run --all-orgs            # counts per org and table; changes nothing
manage.py retention --org acme --only metrics       # archive and delete acme's metrics older than 13 months
manage.py retention --all-orgs --json               # everything, including data of no org (REDS runs, ...)
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandParser
from django.core.serializers.json import DjangoJSONEncoder

from p360.core.commands import CommandFailed, P360Command
from p360.core.jobs.retention import GLOBAL, KINDS, apply_retention


class Command(P360Command):
    help = "Archive and delete data past its retention period (or count it with --dry-run)."
    org_option = "many"
    lock_name = ""

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be archived/deleted; change nothing"
        )
        parser.add_argument(
            "--only", action="append", choices=KINDS, help="only this kind (repeatable): metrics, logs, audit"
        )

    def run(self, **options: Any) -> dict[str, Any]:
        orgs = self.resolve_orgs(options)
        report = apply_retention(
            orgs=orgs,
            include_global=bool(options.get("all_orgs")),
            kinds=options.get("only") or KINDS,
            dry_run=bool(options.get("dry_run")),
        )
        if report["failed"]:
            if options.get("json"):  # the report still goes to stdout; the exit status says it failed
                self.stdout.write(json.dumps(report, cls=DjangoJSONEncoder, sort_keys=True))
            raise CommandFailed(f"retention failed for {', '.join(report['failed'])}; nothing of those was deleted")
        return report

    def render(self, result: dict[str, Any]) -> str:
        verb = "would delete" if result["dry_run"] else "deleted"
        lines = [f"{'DRY RUN: nothing changed. ' if result['dry_run'] else ''}cut-offs: {result['cutoffs']}"]
        for org, kinds in result["orgs"].items():
            for kind, res in kinds.items():
                if "error" in res:
                    lines.append(f"{org:<20} {kind:<8} FAILED: {res['error']}")
                    continue
                for table, count in res["rows"].items():
                    lines.append(f"{org:<20} {kind:<8} {table:<26} {count:>10,} {verb}")
                if res.get("archived_files"):
                    lines.append(f"{org:<20} {kind:<8} {'archive files written':<26} {res['archived_files']:>10,}")
        if GLOBAL not in result["orgs"]:
            lines.append("(data of no organisation is handled with --all-orgs)")
        return "\n".join(lines)
