"""The timer worker: exits (and delayed entries) when windows slide, from the due-time index.

`--once` runs one pass (tests, cron); without it the command loops every `--interval` seconds over
every organisation. Each pass reads only the (user, rule) pairs whose due time has passed.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime
from django_tenants.utils import schema_context

from segments.commands import orgs_from


class Command(BaseCommand):
    help = "Evaluate due window timers (exits when a window slides past a user's events)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--org", action="append", help="organisation slug (repeatable; default all)")
        parser.add_argument("--once", action="store_true", help="one pass, then stop")
        parser.add_argument("--interval", type=float, default=0.5, help="seconds between passes")
        parser.add_argument("--at", help="evaluate as of this ISO-8601 time (tests, replays)")

    def handle(self, *args: Any, **options: Any) -> None:
        from segments.evaluator import run_timers

        at = None
        if options.get("at"):
            at = parse_datetime(options["at"])
            if at is None or at.tzinfo is None:
                raise CommandError("--at must be an ISO-8601 time with a zone")
        while True:
            for org in orgs_from(options.get("org")):
                with schema_context(org.schema_name):
                    outcome = run_timers(now=at)
                if outcome.transitions or options["once"]:
                    self.stdout.write(
                        f"{org.slug}: {outcome.pairs} due pair(s), {outcome.entries} entr(ies), {outcome.exits} exit(s)"
                    )
            if options["once"]:
                return
            time.sleep(options["interval"])
