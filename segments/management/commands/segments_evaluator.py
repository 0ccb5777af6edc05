"""The JetStream evaluator process (SEGMENTS_RUNTIME=jetstream): owns partitions, stores, evaluates."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Consume event partitions from NATS JetStream and evaluate segments (worker i of N)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--worker", type=int, default=0, help="this process's index (0-based)")
        parser.add_argument("--workers", type=int, default=1, help="how many evaluator processes share the partitions")
        parser.add_argument(
            "--idle-exit", type=float, default=0, help="stop after this many idle seconds (tests, bench)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from segments.jetstream import owned_partitions, partitions, run_evaluator

        worker, workers = options["worker"], options["workers"]
        if workers < 1 or not 0 <= worker < workers or workers > partitions():
            raise CommandError(f"need 0 <= worker < workers <= {partitions()} (SEGMENTS_PARTITIONS)")
        self.stdout.write(f"evaluator {worker}/{workers}: partitions {owned_partitions(worker, workers)}")
        self.stdout.flush()
        handled = run_evaluator(worker, workers, idle_exit=options["idle_exit"])
        self.stdout.write(f"evaluator {worker}/{workers}: {handled} message(s)")
