"""set_cpm --org SLUG CPM --effective-date YYYY-MM-DD [--currency USD]"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import CommandParser

from campaigns.services import CampaignServiceError, cpm_set
from p360.core.commands import CommandFailed, P360Command


class Command(P360Command):
    help = "Set the organisation's CPM from an effective date on (the history of rates is kept)."
    org_option = "one"

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("cpm", help="cost per 1,000 impressions, up to 4 decimals (for example 12.5)")
        parser.add_argument("--effective-date", required=True, help="YYYY-MM-DD: the first day the rate applies")
        parser.add_argument("--currency", default="USD", help="ISO currency code (default USD)")
        parser.add_argument("--note", default="", help="why the rate changed (kept with it)")

    def run(self, **options: Any) -> dict[str, Any]:
        org = self.resolve_orgs(options)[0]
        try:
            day = dt.date.fromisoformat(options["effective_date"])
        except ValueError as exc:
            raise CommandFailed(f"--effective-date {options['effective_date']!r} is not a date (YYYY-MM-DD)") from exc
        with self.in_org(org):
            try:
                rate = cpm_set(
                    cpm=options["cpm"],
                    effective_date=day,
                    currency=options["currency"],
                    actor=None,
                    note=options["note"],
                )
            except CampaignServiceError as exc:
                raise CommandFailed(str(exc)) from exc
        return {
            "org": org.slug,
            "cpm": str(rate.cpm),
            "currency": rate.currency,
            "effective_date": rate.effective_date.isoformat(),
            "id": rate.pk,
        }

    def render(self, result: dict[str, Any]) -> str:
        return f"{result['org']}: CPM {result['cpm']} {result['currency']} from {result['effective_date']}"
