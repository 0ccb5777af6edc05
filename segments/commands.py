"""Shared pieces of the segments management commands (all on `p360.core.commands.P360Command`: `--json`, one-line
errors, locks).

Arguments are those of the contract and README, unchanged: `--org SLUG` (repeatable; default every active
organisation) for the per-org passes, `--org SLUG` (required) for the bulk load. Locks: a `segments_timers` loop and
a `segments_retention` run are one at a time; `segments_evaluator` one process per `--worker i --workers N` (a
restarted worker waits a few seconds for its killed predecessor's session to close). `segments_deliver` takes no
lock: parallel send workers are safe (each send row is locked while it is sent, `segments/triggers.py`).
`--once` passes take no lock: they are idempotent, and a cron pass never fails because a loop is running.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from django.core.management.base import CommandError, CommandParser

from p360.core.commands import P360Command


def orgs_from(slugs: list[str] | None) -> list[Any]:
    from tenants.models import Organization

    orgs = Organization.objects.exclude(schema_name="public").filter(is_active=True).order_by("slug")
    if slugs:
        found = list(orgs.filter(slug__in=slugs))
        missing = sorted(set(slugs) - {o.slug for o in found})
        if missing:
            raise CommandError(f"unknown organisation: {', '.join(missing)}")
        return found
    return list(orgs)


def counts_line(slug: str, counts: dict[str, Any]) -> str:
    return f"{slug}: " + ", ".join(f"{key} {value}" for key, value in counts.items())


class SegmentsCommand(P360Command):
    """A segments command: `--org` as the segments commands always had it (repeatable, default all)."""

    def add_org_argument(self, parser: CommandParser) -> None:
        parser.add_argument("--org", action="append", help="organisation slug (repeatable; default all)")


class PassLoop(SegmentsCommand):
    """A worker that runs one pass over the orgs every `--interval` seconds (`--once`: one pass, its result).

    Looping, each pass prints one line per org that did something (one JSON object per line with `--json`)."""

    default_interval = 1.0
    loop_lock = True  # the loop is one at a time (a `--once` pass never locks)

    def add_command_arguments(self, parser: CommandParser) -> None:
        self.add_org_argument(parser)
        parser.add_argument("--once", action="store_true", help="one pass, then stop")
        parser.add_argument("--interval", type=float, default=self.default_interval, help="seconds between passes")

    def handle(self, *args: Any, **options: Any) -> None:
        self.lock_name = "" if self.loop_lock and not options.get("once") else None
        super().handle(*args, **options)

    def one_pass(self, options: dict[str, Any]) -> Callable[[], dict[str, Any]]:
        """A function run in each org's schema that returns that org's counts."""
        raise NotImplementedError

    def busy(self, counts: dict[str, Any]) -> bool:
        return any(counts.values())

    def again_at_once(self) -> bool:
        """True when the pass that just ran should be followed at once (work is waiting), not after `--interval`."""
        return False

    def pause(self, seconds: float) -> None:
        """Wait between passes (a loop may wake up earlier when told work arrived)."""
        time.sleep(seconds)

    def run(self, **options: Any) -> dict[str, Any]:
        work = self.one_pass(options)
        while True:
            results: dict[str, dict[str, Any]] = {}
            for org in orgs_from(options.get("org")):  # read each pass: a new organisation is picked up
                with self.in_org(org):
                    results[org.slug] = work()
            if options["once"]:
                return {"orgs": results}
            for slug, counts in results.items():
                if self.busy(counts):
                    line = json.dumps({"org": slug, **counts}) if options.get("json") else counts_line(slug, counts)
                    self.stdout.write(line)
            if not self.again_at_once():
                self.pause(options["interval"])

    def render(self, result: dict[str, Any]) -> str:
        return "\n".join(counts_line(slug, counts) for slug, counts in result["orgs"].items())
