"""ingest SOURCE [FILE] [--org SLUG] [--date YYYY-MM-DD] [--from D --to D] [--json]"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from ingestion.models import RunStatus, Source, Trigger
from ingestion.services import IngestionError, create_run, ingest_file, start_run
from p360.core.commands import CommandFailed, P360Command

SOURCES = ["surfside", "facebook", "vibe", "reds", "bombora"]
MAX_BACKFILL_DAYS = 366


def parse_day(value: str | None, flag: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise CommandFailed(f"{flag} {value!r} is not a date (YYYY-MM-DD)") from exc


class Command(P360Command):
    help = (
        "Load paid-media data: a Surfside, Facebook, Vibe or REDS file, or pull Surfside from S3 / Vibe from its "
        "API when no FILE is given. Re-running a source and date replaces its rows exactly."
    )
    org_option = "one"

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", choices=SOURCES, help="surfside | facebook | vibe | reds | bombora")
        parser.add_argument(
            "file", nargs="?", help="the file to load (omit to pull Surfside from S3 or Vibe from its API)"
        )
        parser.add_argument("--date", help="the day the file is for (rows of other days are quarantined); pulls use it")
        parser.add_argument("--from", dest="date_from", help="backfill: first day to pull (Surfside/Vibe)")
        parser.add_argument("--to", dest="date_to", help="backfill: last day to pull (inclusive)")

    def run(self, **options: Any) -> dict[str, Any]:
        source = options["source"]
        if source == Source.BOMBORA:
            return self._bombora(options)
        org = self.resolve_orgs(options)[0] if options.get("org") else None
        day = parse_day(options.get("date"), "--date")
        start, end = parse_day(options.get("date_from"), "--from"), parse_day(options.get("date_to"), "--to")
        path = Path(options["file"]).expanduser() if options.get("file") else None
        if path is not None and not path.is_file():
            raise CommandFailed(f"no such file: {path}")
        if source != Source.REDS and org is None:
            raise CommandFailed(f"{source} data belongs to one organisation: name it with --org SLUG")
        if path is None and source in (Source.FACEBOOK, Source.REDS):
            raise CommandFailed(f"{source} needs a FILE")
        if (start or end) and (path is not None or not (start and end)):
            raise CommandFailed("--from and --to go together, and only without FILE (a pull from the source)")
        try:
            if path is not None:
                # REDS rows are routed by advertiser id; with --org only that org's rows load.
                run = ingest_file(source=source, org=org, path=path, run_date=day)
                return self._result(run.summary(), options)
            days = self._days(day, start, end)
            summaries = []
            for one_day in days:
                run = create_run(source=source, org=org, run_date=one_day, trigger=Trigger.COMMAND)
                summaries.append(start_run(run, inline=True).summary())
        except IngestionError as exc:
            raise CommandFailed(str(exc)) from exc
        if len(summaries) == 1:
            return self._result(summaries[0], options)
        failed = [s for s in summaries if s["status"] != RunStatus.SUCCEEDED]
        combined = {
            "run_id": summaries[-1]["run_id"],
            "run_ids": [s["run_id"] for s in summaries],
            "status": RunStatus.FAILED if failed else RunStatus.SUCCEEDED,
            "rows_read": sum(s["rows_read"] for s in summaries),
            "rows_loaded": sum(s["rows_loaded"] for s in summaries),
            "rows_quarantined": sum(s["rows_quarantined"] for s in summaries),
            "runs": summaries,
            "error": "; ".join(f"run {s['run_id']}: {s['error']}" for s in failed),
        }
        return self._result(combined, options)

    def _bombora(self, options: dict[str, Any]) -> dict[str, Any]:
        """Bombora data is global: a FILE, no --org; the week comes from --date, the file name or a Week column."""
        if options.get("org"):
            raise CommandFailed("Bombora data is global (shared by every organisation): do not name an --org")
        if options.get("date_from") or options.get("date_to"):
            raise CommandFailed("--from/--to do not apply to bombora (one file is one week)")
        if not options.get("file"):
            raise CommandFailed(
                "bombora needs a FILE (the S3 pickup runs on its schedule: ingestion.tasks.bombora_pickup)"
            )
        path = Path(options["file"]).expanduser()
        if not path.is_file():
            raise CommandFailed(f"no such file: {path}")
        day = parse_day(options.get("date"), "--date")
        try:
            run = ingest_file(source=Source.BOMBORA, org=None, path=path, run_date=day)
        except IngestionError as exc:
            raise CommandFailed(str(exc)) from exc
        return self._result(run.summary(), options)

    @staticmethod
    def _days(day: dt.date | None, start: dt.date | None, end: dt.date | None) -> list[dt.date]:
        if start and end:
            if end < start:
                raise CommandFailed("--to is before --from")
            if (end - start).days >= MAX_BACKFILL_DAYS:
                raise CommandFailed(f"a backfill covers at most {MAX_BACKFILL_DAYS} days")
            return [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
        return [day or (timezone.now().date() - dt.timedelta(days=1))]

    def _result(self, result: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        if result["status"] != RunStatus.SUCCEEDED:
            if options.get("json"):
                self.stdout.write(json.dumps(result, cls=DjangoJSONEncoder, sort_keys=True))
            raise CommandFailed(f"run {result['run_id']} failed: {result['error']}")
        return result

    def render(self, result: dict[str, Any]) -> str:
        line = (
            f"run {result['run_id']}: {result['status']}; {result['rows_read']:,} rows read, "
            f"{result['rows_loaded']:,} loaded, {result['rows_quarantined']:,} quarantined"
        )
        if result.get("duplicates"):
            line += f", {result['duplicates']:,} merged as duplicates"
        if result.get("routed"):
            line += "; routed: " + ", ".join(f"{slug} {n:,}" for slug, n in result["routed"].items())
        return line
