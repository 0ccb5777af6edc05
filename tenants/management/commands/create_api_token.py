"""create_api_token EMAIL [--name NAME] -> prints a token for `Authorization: Token <token>`"""

from typing import Any

from django.core.management.base import CommandParser

from p360.core.commands import CommandFailed, P360Command
from tenants.models import User
from tenants.services import api_token_create


class Command(P360Command):
    help = "Create an API token for a user and print it (it is shown only once; only its hash is stored)."

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--name", default="command line", help="a name to recognise the token by")

    def run(self, **options: Any) -> dict[str, Any]:
        user = User.objects.filter(email__iexact=options["email"].strip()).first()
        if user is None:
            raise CommandFailed(f"no user with email {options['email']!r}")
        if not user.is_active:
            raise CommandFailed(f"user {user.email} is deactivated")
        token, raw = api_token_create(user=user, name=options["name"])
        return {"token": raw, "id": token.pk, "name": token.name, "email": user.email}

    def render(self, result: dict[str, Any]) -> str:
        return result["token"]
