"""create_org SLUG --name NAME [--ttd-advertiser-id ID] [--salesforce-account-id ID]"""

from typing import Any

from django.core.management.base import CommandParser

from p360.core.commands import P360Command
from tenants.services import org_create


class Command(P360Command):
    help = "Create an organisation with its own schema (migrated) and routing under /o/<slug>/."
    lock_name = ""

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="2-40 characters of a-z, 0-9 and '-'")
        parser.add_argument("--name", required=True, help="display name")
        parser.add_argument("--ttd-advertiser-id", default="", help="The Trade Desk advertiser id (routes REDS rows)")
        parser.add_argument("--salesforce-account-id", default="")

    def run(self, **options: Any) -> dict[str, Any]:
        org = org_create(
            slug=options["slug"],
            name=options["name"],
            ttd_advertiser_id=options["ttd_advertiser_id"],
            salesforce_account_id=options["salesforce_account_id"],
        )
        return {"id": org.pk, "slug": org.slug, "name": org.name, "schema": org.schema_name, "url": f"/o/{org.slug}/"}

    def render(self, result: dict[str, Any]) -> str:
        return (
            f"Created organisation {result['name']} ({result['slug']}), schema {result['schema']}, at {result['url']}"
        )
