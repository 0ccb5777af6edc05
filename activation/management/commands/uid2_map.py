"""uid2_map --org SLUG [--audience ID] [--due-only] [--json]"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from audiences.models import Audience
from p360.core.commands import CommandFailed, P360Command
from p360.core.jobs.models import JobStatus
from p360.core.jobs.services import job_run_inline


class Command(P360Command):
    help = (
        "Map the organisation's records (emails, then phones) to raw UID2s through the operator set by "
        "P360_UID2_BASE_URL / P360_UID2_API_KEY / P360_UID2_SECRET_KEY; opt-outs are recorded and left out "
        "of every export."
    )
    org_option = "one"

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--audience", type=int, metavar="ID", help="only this audience's records")
        parser.add_argument(
            "--due-only", action="store_true", help="only identities never mapped or past their refresh time"
        )

    def run(self, **options: Any) -> dict[str, Any]:
        (org,) = self.resolve_orgs(options)
        with self.in_org(org):
            audience_id = options.get("audience")
            if audience_id is not None and not Audience.objects.filter(pk=audience_id).exists():
                raise CommandFailed(f"unknown audience {audience_id} in organisation {org.slug}")
            job = job_run_inline(
                kind="activation.uid2_map",
                org=org,
                params={"audience_id": audience_id, "due_only": bool(options.get("due_only"))},
            )
        if job.status != JobStatus.SUCCEEDED:
            raise CommandFailed(job.error or "the UID2 mapping failed")
        result = dict(job.result)
        result["job_id"] = job.pk
        return result
