"""Bulk load of events from a file (JSON Lines, or a JSON array): the same validation and idempotent
store as the API, in batches of 10,000, each followed by evaluation. Bad lines are reported with
their line number and reason (and written to --rejects as JSON Lines); re-running the same file
stores nothing twice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from p360.core.api_parsers import loads, may_hold_nul
from segments.commands import SegmentsCommand, orgs_from
from segments.events import MAX_BATCH


class Command(SegmentsCommand):
    """No lock: loads are idempotent by event_id, so two runs of one file store everything once."""

    help = "Load events from a JSON Lines file into one organisation (idempotent by event_id)."

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path")
        parser.add_argument("--org", required=True, help="organisation slug")
        parser.add_argument("--rejects", help="write rejected lines here (JSON Lines: line, error, raw)")
        parser.add_argument("--no-evaluate", action="store_true", help="store only (backfill of old events)")

    def run(self, **options: Any) -> dict[str, Any]:
        from segments.evaluator import evaluate_pending
        from segments.services import ingest_events

        path = Path(options["path"])
        if not path.is_file():
            raise CommandError(f"no such file: {path}")
        (org,) = orgs_from([options["org"]])
        totals = {"accepted": 0, "duplicates": 0, "rejected": 0}
        rejects = open(options["rejects"], "w", encoding="utf-8") if options.get("rejects") else None  # noqa: SIM115
        try:
            with self.in_org(org):
                for lines, raws, parse_errors, (strict, nul) in _batches(path):
                    result = ingest_events(
                        raws=raws, evaluate=not options["no_evaluate"], strict_json=strict, may_hold_nul=nul
                    ).result
                    totals["accepted"] += result.accepted
                    totals["duplicates"] += result.duplicates
                    failures = [(lines[r.index], r.as_dict()["error"], raws[r.index]) for r in result.rejected]
                    failures += parse_errors
                    totals["rejected"] += len(failures)
                    for line, error, raw in sorted(failures, key=lambda f: f[0]):
                        self.stderr.write(f"line {line}: {error['message']}")
                        if rejects:
                            rejects.write(json.dumps({"line": line, "error": error, "raw": raw}, default=str) + "\n")
                if not options["no_evaluate"]:  # batches over the inline size were queued: evaluated before returning
                    evaluate_pending()
        finally:
            if rejects:
                rejects.close()
        return {"org": org.slug, **totals, "rejects_file": options.get("rejects") or None}

    def render(self, result: dict[str, Any]) -> str:
        return (
            f"{result['org']}: {result['accepted']} accepted, {result['duplicates']} duplicate(s), "
            f"{result['rejected']} rejected"
        )


FAST_LINES = True  # False: every line through the standard library's decoder (the A/B of session 13)


def _batches(path: Path) -> Any:
    """Yield (line numbers, parsed events, unparseable lines, (strict, nul)) in batches of at most MAX_BATCH.

    Lines are decoded as the API decodes bodies (p360.core.api_parsers.loads: orjson, and the standard library for
    anything orjson would read differently or refuse, so every result and error is the standard library's); `strict`
    says orjson decoded every line of the batch and `nul` that some line may hold a NUL character, which lets
    validation take the API's faster paths (segments.events.validate_columns).
    """
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        first = handle.read(1)
        handle.seek(0)
        if first == "[":  # one JSON array
            try:
                items = json.load(handle)
            except (ValueError, RecursionError) as exc:
                raise CommandError(f"{path} is not valid JSON: {exc}") from exc
            for start in range(0, len(items), MAX_BATCH):
                chunk = items[start : start + MAX_BATCH]
                yield list(range(start + 1, start + 1 + len(chunk))), chunk, [], (False, True)
            return
        lines: list[int] = []
        raws: list[Any] = []
        errors: list[tuple[int, dict[str, Any], str]] = []
        strict, nul = FAST_LINES, False
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                if FAST_LINES:
                    raw = text.encode()
                    value, decoded_strict = loads(raw)
                    strict, nul = strict and decoded_strict, nul or may_hold_nul(raw)
                    raws.append(value)
                else:
                    raws.append(json.loads(text))
                lines.append(number)
            except (ValueError, RecursionError) as exc:  # RecursionError: a line nested too deep for the decoder
                errors.append((number, {"code": "invalid_json", "message": f"not JSON: {exc}"}, text[:500]))
            if len(raws) >= MAX_BATCH:
                yield lines, raws, errors, (strict, nul or not FAST_LINES)
                lines, raws, errors = [], [], []
                strict, nul = FAST_LINES, False
        if raws or errors:
            yield lines, raws, errors, (strict, nul or not FAST_LINES)
