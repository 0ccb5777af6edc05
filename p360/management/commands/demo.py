"""demo: load the demo organisations, users, audiences and campaigns (idempotent)."""

from typing import Any

from p360.core.commands import P360Command
from p360.demo import load_demo


class Command(P360Command):
    help = "Load the demo organisations (acme, globex), users and data. Safe to run again."
    lock_name = ""

    def run(self, **options: Any) -> dict[str, Any]:
        return load_demo()

    def render(self, result: dict[str, Any]) -> str:
        created = ", ".join(f"{count} {what}" for what, count in result["created"].items())
        lines = [f"Demo data ready (created now: {created}).", "Logins (password for all: shown below):"]
        lines += [f"  {login['email']:<26} {login['role']:<17} {login['password']}" for login in result["logins"]]
        return "\n".join(lines)
