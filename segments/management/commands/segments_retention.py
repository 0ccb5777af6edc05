"""Drop event partitions older than each org's retention (default 365 days, NFR16)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django_tenants.utils import schema_context

from segments.commands import orgs_from


class Command(BaseCommand):
    help = "Drop day partitions of events older than the retention period (per organisation)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--org", action="append", help="organisation slug (repeatable; default all)")

    def handle(self, *args: Any, **options: Any) -> None:
        from segments.services import run_retention

        for org in orgs_from(options.get("org")):
            with schema_context(org.schema_name):
                dropped = run_retention()
            self.stdout.write(f"{org.slug}: dropped {len(dropped)} partition(s)")
