"""Shared bits of the orchestration commands."""

from __future__ import annotations

import datetime as dt
from typing import Any

from p360.core.commands import CommandFailed, P360Command


def parse_day(value: str | None, flag: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise CommandFailed(f"{flag} {value!r} is not a date (YYYY-MM-DD)") from exc


def get_or_fail(model: Any, pk: int, label: str) -> Any:
    obj = model.objects.filter(pk=pk).first()
    if obj is None:
        raise CommandFailed(f"unknown {label} {pk}")  # another org's id reads the same as an unknown one
    return obj


class OrchestrationCommand(P360Command):
    org_option = "one"

    def refuse(self, exc: Exception) -> CommandFailed:
        code = getattr(exc, "code", "invalid")
        return CommandFailed(f"{code}: {exc}")
