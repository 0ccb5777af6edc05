"""import_audience --org SLUG FILE --name NAME [--mapping JSON] [--dedupe first|last|merge] [--dedupe-key FIELD]"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from audiences.models import DedupeRule, ImportMode, ImportStatus
from audiences.pipeline import summary
from audiences.services import import_configure, import_create, import_start
from p360.core.commands import CommandFailed, P360Command


class Command(P360Command):
    help = (
        "Import a CSV/XLSX file into an audience (created when new): cleaned, normalised for UID2, "
        "deduplicated; bad rows go to a quarantine CSV with their line numbers and reasons."
    )
    org_option = "one"

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="path of the CSV or XLSX file")
        parser.add_argument("--name", required=True, help="the audience to create or load into")
        parser.add_argument(
            "--mapping",
            default="",
            help='JSON object: source column -> field, e.g. {"E-mail": "email", "Notes": null}; '
            "columns not named keep the automatic mapping; null keeps a column as a custom field",
        )
        parser.add_argument("--dedupe", choices=DedupeRule.values, default=DedupeRule.FIRST)
        parser.add_argument(
            "--dedupe-key",
            default="",
            help="email_normalized (default when an email column is mapped), phone_e164, domain (default "
            "otherwise), maid, company_name, or custom.<column>",
        )
        parser.add_argument("--mode", choices=ImportMode.values, default=ImportMode.APPEND)
        parser.add_argument("--default-country", default="US", help="for phone numbers without a country code")

    def run(self, **options: Any) -> dict[str, Any]:
        (org,) = self.resolve_orgs(options)
        path = Path(options["file"])
        if not path.is_file():
            raise CommandFailed(f"no such file: {path}")
        overrides = self._mapping(options["mapping"])
        with self.in_org(org):
            imp = import_create(audience_name=options["name"], source_name=path.name, actor=None, path=path)
            unknown = sorted(set(overrides) - set(imp.headers))
            if unknown:
                raise CommandFailed(
                    f"--mapping names columns the file does not have: {', '.join(unknown)} "
                    f"(columns: {', '.join(imp.headers)})"
                )
            mapping: dict[str, str | None] = {**imp.mapping, **overrides}
            imp = import_configure(
                imp=imp,
                actor=None,
                mapping=mapping,
                custom_types={h: t for h, t in imp.custom_types.items() if not mapping.get(h)},
                mode=options["mode"],
                dedupe_key=options["dedupe_key"],
                dedupe_rule=options["dedupe"],
                default_country=options["default_country"],
            )
            imp = import_start(imp=imp, actor=None, inline=True)
            if imp.status != ImportStatus.SUCCEEDED:
                raise CommandFailed(imp.error or f"the import ended {imp.status}")
            return summary(imp)

    @staticmethod
    def _mapping(raw: str) -> dict[str, str | None]:
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise CommandFailed(f"--mapping is not valid JSON: {exc.msg}") from exc
        if not isinstance(value, dict) or not all(isinstance(v, str | None) for v in value.values()):
            raise CommandFailed('--mapping must be a JSON object of column -> field (or null), e.g. {"Email": "email"}')
        return value

    def render(self, result: dict[str, Any]) -> str:
        lines = [
            f"Imported into audience #{result['audience_id']} (version {result['version']}): "
            f"{result['rows_loaded']} loaded, {result['rows_quarantined']} quarantined, "
            f"{result['duplicates']} duplicates, of {result['rows_read']} rows read."
        ]
        if result["quarantine_file"]:
            lines.append(f"Quarantined rows: {result['quarantine_file']}")
        return "\n".join(lines)
