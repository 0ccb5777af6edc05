"""Drop event partitions older than each org's retention (default 365 days, NFR16)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from segments.commands import SegmentsCommand, orgs_from


class Command(SegmentsCommand):
    help = "Drop day partitions of events older than the retention period (per organisation)."
    lock_name = ""  # one run at a time

    def add_command_arguments(self, parser: CommandParser) -> None:
        self.add_org_argument(parser)

    def run(self, **options: Any) -> dict[str, Any]:
        from segments.services import run_retention

        dropped: dict[str, list[str]] = {}
        for org in orgs_from(options.get("org")):
            with self.in_org(org):
                dropped[org.slug] = run_retention()
        return {"orgs": {slug: {"dropped": names} for slug, names in dropped.items()}}

    def render(self, result: dict[str, Any]) -> str:
        return "\n".join(
            f"{slug}: dropped {len(info['dropped'])} partition(s)" for slug, info in result["orgs"].items()
        )
