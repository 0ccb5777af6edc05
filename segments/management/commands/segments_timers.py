"""The evaluator loop of the embedded runtime: queued event batches (segments_pendingbatch, the batches larger than
SEGMENTS_EVALUATE_INLINE_MAX), then exits (and delayed entries) when windows slide, from the due-time index.

`--once` runs one pass (tests, cron); without it the command loops every `--interval` seconds over
every organisation. Each pass reads only the (user, rule) pairs whose due time has passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.core.management.base import CommandParser
from django.utils.dateparse import parse_datetime

from p360.core.commands import CommandFailed
from segments.commands import PassLoop


class Command(PassLoop):
    help = "Evaluate queued event batches and due window timers (exits when a window slides past a user's events)."
    default_interval = 0.5
    drained = False  # a pass evaluated queued batches: more may have arrived meanwhile, so no pause

    def add_command_arguments(self, parser: CommandParser) -> None:
        super().add_command_arguments(parser)
        parser.add_argument("--at", help="evaluate as of this ISO-8601 time (tests, replays)")

    def one_pass(self, options: dict[str, Any]) -> Callable[[], dict[str, Any]]:
        from segments.evaluator import evaluate_pending, run_timers

        at = None
        if options.get("at"):
            at = parse_datetime(options["at"])
            if at is None or at.tzinfo is None:
                raise CommandFailed("--at must be an ISO-8601 time with a zone")

        def work() -> dict[str, Any]:
            queued = evaluate_pending(now=at)
            self.drained = self.drained or bool(queued.batches)
            outcome = run_timers(now=at)
            return {  # the entries and exits of both (the contract's keys are unchanged)
                "due_pairs": outcome.pairs,
                "entries": queued.entries + outcome.entries,
                "exits": queued.exits + outcome.exits,
            }

        return work

    def again_at_once(self) -> bool:
        again, self.drained = self.drained, False
        return again

    listening: Any = None  # the database connection this loop LISTENs on

    def pause(self, seconds: float) -> None:
        """Sleep up to `seconds`, woken at once when a batch is queued for the loop (NOTIFY from
        segments.services.ingest_events after its commit): a queued batch waits for no interval."""
        import psycopg
        from django.db import DatabaseError, connection

        from segments.evaluator import QUEUE_CHANNEL

        try:
            connection.ensure_connection()
            raw = connection.connection
            if self.listening is not raw:
                with connection.cursor() as cursor:
                    cursor.execute(f"LISTEN {QUEUE_CHANNEL}")
                self.listening = raw
            for _ in raw.notifies(timeout=seconds, stop_after=1):
                pass
        except (DatabaseError, psycopg.Error):  # no wake-up (connection lost, ...): the interval still runs the loop
            self.listening = None
            time.sleep(seconds)

    def busy(self, counts: dict[str, Any]) -> bool:
        return bool(counts["entries"] or counts["exits"])

    def render(self, result: dict[str, Any]) -> str:
        return "\n".join(
            f"{slug}: {c['due_pairs']} due pair(s), {c['entries']} entr(ies), {c['exits']} exit(s)"
            for slug, c in result["orgs"].items()
        )
