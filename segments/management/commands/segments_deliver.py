"""The send worker: delivers due trigger-campaign sends (email, SMS, push) from the outbox."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand
from django_tenants.utils import schema_context

from segments.commands import orgs_from


class Command(BaseCommand):
    help = "Deliver due trigger-campaign sends (one row at a time, locked while sending)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--org", action="append", help="organisation slug (repeatable; default all)")
        parser.add_argument("--once", action="store_true", help="one pass, then stop")
        parser.add_argument("--interval", type=float, default=2.0, help="seconds between passes")

    def handle(self, *args: Any, **options: Any) -> None:
        from segments.triggers import deliver_due

        while True:
            for org in orgs_from(options.get("org")):
                with schema_context(org.schema_name):
                    counts = deliver_due()
                if any(counts.values()) or options["once"]:
                    self.stdout.write(f"{org.slug}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
            if options["once"]:
                return
            time.sleep(options["interval"])
