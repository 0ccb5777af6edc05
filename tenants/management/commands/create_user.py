"""create_user EMAIL --role ROLE [--org SLUG]... [--password PASSWORD]"""

from typing import Any

from django.core.management.base import CommandParser

from p360.core.commands import CommandFailed, P360Command
from tenants.models import Organization, Role
from tenants.services import user_create


class Command(P360Command):
    help = "Create a user with a role; campaign managers get one or more orgs, marketers exactly one."

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--role", required=True, help=f"one of {', '.join(Role.values)}")
        parser.add_argument("--org", action="append", default=[], metavar="SLUG", help="an org to assign (repeatable)")
        parser.add_argument("--password", help="a password (omit to create the user without one, e.g. for SSO)")
        parser.add_argument("--name", default="", help="full name")

    def run(self, **options: Any) -> dict[str, Any]:
        orgs = []
        for slug in options["org"]:
            org = Organization.objects.customers().filter(slug=slug).first()
            if org is None:
                raise CommandFailed(f"unknown organisation {slug!r}")
            orgs.append(org)
        user = user_create(
            email=options["email"],
            role=options["role"],
            orgs=orgs,
            password=options["password"],
            full_name=options["name"],
        )
        return {"id": user.pk, "email": user.email, "role": user.role, "orgs": [org.slug for org in orgs]}

    def render(self, result: dict[str, Any]) -> str:
        orgs = ", ".join(result["orgs"]) or ("all" if result["role"] == Role.SUPER_ADMIN else "none")
        return f"Created {result['role']} {result['email']} (orgs: {orgs})"
