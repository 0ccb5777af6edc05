"""The JetStream evaluator process (SEGMENTS_RUNTIME=jetstream): owns partitions, stores, evaluates.

One process per worker index (a lock per `--worker i --workers N`); a restarted worker waits up to
`lock_wait` seconds for its killed predecessor's database session to close."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandParser

from p360.core.commands import CommandFailed
from segments.commands import SegmentsCommand


class Command(SegmentsCommand):
    help = "Consume event partitions from NATS JetStream and evaluate segments (worker i of N)."
    lock_wait = 15.0

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--worker", type=int, default=0, help="this process's index (0-based)")
        parser.add_argument("--workers", type=int, default=1, help="how many evaluator processes share the partitions")
        parser.add_argument(
            "--idle-exit", type=float, default=0, help="stop after this many idle seconds (tests, bench)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from segments.jetstream import partitions

        worker, workers = options["worker"], options["workers"]
        if workers < 1 or not 0 <= worker < workers or workers > partitions():
            raise CommandFailed(f"need 0 <= worker < workers <= {partitions()} (SEGMENTS_PARTITIONS)")
        self.lock_name = f"segments_evaluator:{worker}/{workers}"
        super().handle(*args, **options)

    def run(self, **options: Any) -> dict[str, Any]:
        from segments.jetstream import owned_partitions, run_evaluator

        worker, workers = options["worker"], options["workers"]
        owned = owned_partitions(worker, workers)
        # The first line says the consumers are being created (tests and the benchmark wait for it).
        if options.get("json"):
            self.stdout.write(json.dumps({"worker": worker, "workers": workers, "partitions": owned}))
        else:
            self.stdout.write(f"evaluator {worker}/{workers}: partitions {owned}")
        self.stdout.flush()
        handled = run_evaluator(worker, workers, idle_exit=options["idle_exit"])
        return {"worker": worker, "workers": workers, "partitions": owned, "messages": handled}

    def render(self, result: dict[str, Any]) -> str:
        return f"evaluator {result['worker']}/{result['workers']}: {result['messages']} message(s)"
