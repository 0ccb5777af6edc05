"""One base for every ops command: --json output, one-line errors, --org/--all-orgs, a run lock.

Bad input prints `error: <what is wrong>` on stderr and exits 1 (2 for unusable arguments);
nothing is half-written because each command's work runs inside a service's transaction.
"""

from __future__ import annotations

import json
import sys
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django_tenants.utils import schema_context

from p360.core import context
from p360.core.errors import ServiceError
from p360.core.tenancy import org_model


class CommandFailed(CommandError):
    """A command refused its input; the message is printed as one line."""


class OneLineParser(CommandParser):
    def error(self, message: str) -> Any:  # type: ignore[override]
        if self.called_from_command_line:
            sys.stderr.write(f"error: {message} (see --help)\n")
            sys.exit(2)
        raise CommandError(f"error: {message}")


class P360Command(BaseCommand):
    """Subclasses implement `run(**options) -> dict` and optionally `render(result) -> str`."""

    #: whether the command accepts --org SLUG (one or more times) / --all-orgs
    org_option: str | None = None  # None, "one", "many"
    lock_name: str | None = None  # a non-overlap lock; defaults to the command name when set to ""
    #: seconds to wait for the lock before refusing (a restarted worker whose killed predecessor's session is
    #: still closing); 0 refuses at once
    lock_wait: float = 0

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.__class__ = OneLineParser  # one-line usage errors (Django gives no hook for the class)
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
        if self.org_option == "one":
            parser.add_argument("--org", metavar="SLUG", help="the organisation to act on")
        elif self.org_option == "many":
            group = parser.add_mutually_exclusive_group()
            group.add_argument("--org", metavar="SLUG", action="append", help="an organisation (repeatable)")
            group.add_argument("--all-orgs", action="store_true", help="every active organisation")
        self.add_command_arguments(parser)

    def add_command_arguments(self, parser: CommandParser) -> None:
        """Subclasses add their own arguments here."""

    def handle(self, *args: Any, **options: Any) -> None:
        with context.bound(user="cli", request_id=f"cli-{self.name()}"):
            try:
                with self._lock():
                    result = self.run(**options)
            except CommandError:
                raise
            except ValidationError as exc:
                raise CommandFailed("; ".join(exc.messages)) from exc
            except ServiceError as exc:
                raise CommandFailed(str(exc)) from exc
        if options.get("json"):
            self.stdout.write(json.dumps(result, cls=DjangoJSONEncoder, sort_keys=True))
        else:
            self.stdout.write(self.render(result))

    def execute(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute(*args, **options)
        except CommandError as exc:
            if options.get("traceback") or not getattr(self, "_called_from_command_line", False):
                raise
            message = str(exc)
            self.stderr.write(message if message.startswith("error:") else f"error: {message}")
            sys.exit(exc.returncode or 1)

    def name(self) -> str:
        return type(self).__module__.rsplit(".", 1)[-1]

    def run(self, **options: Any) -> dict[str, Any]:
        raise NotImplementedError

    def render(self, result: dict[str, Any]) -> str:
        return "\n".join(f"{key}: {value}" for key, value in result.items())

    # --- helpers ---------------------------------------------------------------------------------

    def resolve_orgs(self, options: dict[str, Any]) -> list[Any]:
        """The organisations named by --org / --all-orgs (active ones only)."""
        Organization = org_model()
        if options.get("all_orgs"):
            return list(Organization.objects.active())
        slugs = options.get("org") or []
        slugs = [slugs] if isinstance(slugs, str) else slugs
        if not slugs:
            raise CommandFailed(
                "name an organisation with --org SLUG" + (" or use --all-orgs" if self.org_option == "many" else "")
            )
        orgs = []
        for slug in slugs:
            org = Organization.objects.active().filter(slug=slug).first()
            if org is None:
                raise CommandFailed(f"unknown or inactive organisation {slug!r}")
            orgs.append(org)
        return orgs

    @contextmanager
    def in_org(self, org: Any) -> Iterator[None]:
        with schema_context(org.schema_name), context.bound(org=org.slug):
            yield

    @contextmanager
    def _lock(self) -> Iterator[None]:
        if self.lock_name is None:
            yield
            return
        key = zlib.crc32(f"p360:{self.lock_name or self.name()}".encode())
        deadline = time.monotonic() + self.lock_wait
        with connection.cursor() as cursor:
            while True:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
                if cursor.fetchone()[0]:
                    break
                if time.monotonic() >= deadline:
                    raise CommandFailed(f"another {self.name()} is running; try again when it has finished")
                time.sleep(0.25)
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
