"""deliver --org SLUG (--destination NAME | --all) [--dry-run] [--json]"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from activation.delivery import start_delivery, summary
from activation.models import DeliveryStatus, Destination
from p360.core.commands import CommandFailed, P360Command


class Command(P360Command):
    help = (
        "Deliver the organisation's audiences to a destination (or all enabled ones): build the files, diff them "
        "against the last successful delivery, stage to storage and push; --dry-run only computes files and diff."
    )
    org_option = "one"

    def add_command_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--destination", metavar="NAME", help="the destination's name")
        which.add_argument("--all", action="store_true", help="every enabled destination")
        parser.add_argument("--dry-run", action="store_true", help="compute the files and the diff; send nothing")

    def run(self, **options: Any) -> dict[str, Any]:
        (org,) = self.resolve_orgs(options)
        with self.in_org(org):
            if options.get("all"):
                destinations = list(Destination.objects.filter(enabled=True))
                if not destinations:
                    raise CommandFailed(f"organisation {org.slug} has no enabled destination")
            else:
                found = Destination.objects.filter(name=options["destination"]).first()
                if found is None:
                    names = ", ".join(Destination.objects.values_list("name", flat=True)) or "none"
                    raise CommandFailed(f"unknown destination {options['destination']!r} (destinations: {names})")
                destinations = [found]
            results = [
                summary(start_delivery(destination=d, actor=None, dry_run=options["dry_run"], org=org, inline=True))
                for d in destinations
            ]
        failed = [r for r in results if r["status"] == DeliveryStatus.FAILED]
        if failed:
            raise CommandFailed("; ".join(f"delivery #{r['delivery_id']} to {r['destination']} failed: {r['error']}"
                                          for r in failed))  # fmt: skip
        if len(results) == 1:
            return results[0]
        return {
            "delivery_id": [r["delivery_id"] for r in results],
            "status": "sent" if all(r["status"] == "sent" for r in results) else results[0]["status"],
            "rows": sum(r["rows"] for r in results),
            # unknown (None) when any delivery's baseline kept no member set
            "added": None if any(r["added"] is None for r in results) else sum(r["added"] for r in results),
            "removed": None if any(r["removed"] is None for r in results) else sum(r["removed"] for r in results),
            "files": [f for r in results for f in r["files"]],
            "deliveries": results,
        }
