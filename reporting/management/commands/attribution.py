"""attribution --org SLUG --start YYYY-MM-DD --end YYYY-MM-DD [--model MODEL|all] [--group-by ...]"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import CommandParser

from p360.core.commands import CommandFailed, P360Command
from reporting.attribution import engine, models


class Command(P360Command):
    help = "Attribute the organisation's REDS conversions with one model or all six (read-only)."
    org_option = "one"

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--start", required=True, help="first conversion day, YYYY-MM-DD (UTC)")
        parser.add_argument("--end", required=True, help="last conversion day, inclusive")
        parser.add_argument("--model", default="all", help=f"{' | '.join(models.MODELS)} | all (default)")
        parser.add_argument("--group-by", default="campaign", help="campaign (default) | line_item | audience")
        parser.add_argument("--lookback-days", type=int, default=30, help="1-90 (default 30)")
        parser.add_argument("--half-life-days", type=float, default=7.0, help="time decay half-life (default 7)")

    def run(self, **options: Any) -> dict[str, Any]:
        org = self.resolve_orgs(options)[0]
        dates = {}
        for name in ("start", "end"):
            try:
                dates[name] = dt.date.fromisoformat(options[name])
            except ValueError as exc:
                raise CommandFailed(f"--{name} {options[name]!r} is not a date (YYYY-MM-DD)") from exc
        model = options["model"]
        if model != "all" and model not in models.MODELS:
            raise CommandFailed(f"unknown model {model!r}; use one of {', '.join(models.MODELS)} or all")
        params = engine.Params(
            start=dates["start"],
            end=dates["end"],
            models=models.MODELS if model == "all" else (model,),
            group_by=options["group_by"],
            lookback_days=options["lookback_days"],
            half_life_days=options["half_life_days"],
        )
        try:
            with self.in_org(org):
                result = engine.run(params)
        except engine.BadParams as exc:
            raise CommandFailed(f"--{exc.field.replace('_', '-')}: {exc}") from exc
        return {"org": org.slug, **result}

    def render(self, result: dict[str, Any]) -> str:
        lines = [
            f"{result['org']}: {result['totals']['conversions']} attributed conversions, "
            f"{result['unattributed']['conversions']} unattributed ({result['params']['start']} to {result['params']['end']})"
        ]
        for model, body in result["results"].items():
            top = ", ".join(f"{row['name']} {row['conversions']:.2f}" for row in body["rows"][:5])
            lines.append(f"  {models.LABELS[model]}: {top or '-'}")
        return "\n".join(lines)
