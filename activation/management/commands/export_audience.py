"""export_audience --org SLUG AUDIENCE_ID --format liveramp|ttd|csv --out DIR [--lookback-days N] [--json]"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from activation.exports import FORMATS, ExportRefused, export_files
from activation.services import config
from audiences.models import Audience
from p360.core.audit.services import record
from p360.core.commands import CommandFailed, P360Command


class Command(P360Command):
    help = (
        "Write the files a delivery of one audience would send (LiveRamp device file, TTD UID2 list or CSV) "
        "into a folder; sends nothing. Device files never carry PII; fewer than 25 rows is refused."
    )
    org_option = "one"

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("audience_id", type=int, metavar="AUDIENCE_ID")
        parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
        parser.add_argument("--out", required=True, metavar="DIR", help="folder to write into (created if needed)")
        parser.add_argument(
            "--lookback-days", type=int, default=None, help="REDS events of the last N days (default: the org's)"
        )

    def run(self, **options: Any) -> dict[str, Any]:
        (org,) = self.resolve_orgs(options)
        lookback = options.get("lookback_days")
        if lookback is not None and lookback <= 0:
            raise CommandFailed("--lookback-days must be a positive number of days")
        with self.in_org(org):
            audience = Audience.objects.filter(pk=options["audience_id"]).first()
            if audience is None:
                raise CommandFailed(f"unknown audience {options['audience_id']} in organisation {org.slug}")
            if lookback is None:
                lookback = config().lookback_days
            try:
                result = export_files(
                    audiences=[audience],
                    fmt=options["fmt"],
                    out_dir=Path(options["out"]),
                    org_name=org.name,
                    lookback_days=lookback,
                )
            except ExportRefused as exc:
                raise CommandFailed(str(exc)) from exc
            record(action="activation.exported", org=org, entity=audience, actor_email="cli",
                   after={"format": options["fmt"], "rows": result.rows, "files": len(result.files)})  # fmt: skip
        return result.as_dict()
