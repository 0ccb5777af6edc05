"""aggregate (--org SLUG | --all-orgs) --period week|month --start YYYY-MM-DD [--json]"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import CommandParser
from django.db import transaction

from p360.core.commands import CommandFailed, P360Command
from reporting.periods import RangeError, check_period, period_end
from reporting.services import NoData, store_summary


class Command(P360Command):
    help = (
        "Store the weekly (Monday-based) or monthly summary of organisations: totals, A.1 figures, top campaigns "
        "and creatives, underperformers, deltas against the previous period. Re-running replaces it."
    )
    org_option = "many"

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--period", required=True, choices=["week", "month"])
        parser.add_argument("--start", required=True, metavar="YYYY-MM-DD", help="a Monday (week) or a 1st (month)")

    def run(self, **options: Any) -> dict[str, Any]:
        try:
            start = dt.date.fromisoformat(options["start"])
        except ValueError:
            raise CommandFailed(f"--start {options['start']!r} is not a date (YYYY-MM-DD)") from None
        period = options["period"]
        try:
            check_period(period, start)
        except RangeError as exc:
            raise CommandFailed(str(exc)) from exc
        orgs = self.resolve_orgs(options)
        stored: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        with transaction.atomic():  # several orgs: all stored or none
            self._each(orgs, period, start, bool(options.get("all_orgs")), stored, skipped)
        return {
            "period": period,
            "start": start.isoformat(),
            "end": period_end(period, start).isoformat(),
            "stored": stored,
            "skipped": skipped,
        }

    def _each(
        self, orgs: list[Any], period: str, start: dt.date, all_orgs: bool, stored: list[Any], skipped: list[Any]
    ) -> None:
        for org in orgs:
            with self.in_org(org):
                try:
                    summary = store_summary(period=period, start=start, generated_by="command", org=org)
                except NoData as exc:
                    if not all_orgs:
                        raise CommandFailed(f"{org.slug}: {exc}") from exc
                    skipped.append({"org": org.slug, "reason": str(exc)})
                    continue
                stored.append(
                    {
                        "org": org.slug,
                        "summary_id": summary.pk,
                        "daily_rows": summary.daily_rows,
                        "totals": summary.totals,
                    }
                )

    def render(self, result: dict[str, Any]) -> str:
        lines = [f"{result['period']} {result['start']} .. {result['end']}"]
        for item in result["stored"]:
            t = item["totals"]
            lines.append(
                f"  {item['org']}: stored ({item['daily_rows']:,} daily rows; spend {t['spend']}, "
                f"conversions {t['conversions']})"
            )
        for item in result["skipped"]:
            lines.append(f"  {item['org']}: skipped ({item['reason']})")
        return "\n".join(lines)
