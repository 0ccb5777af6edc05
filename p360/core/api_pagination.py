"""The one pagination class of the API, and the bounded integer query parameter it uses.

`?limit=9223372036854775809` (past PostgreSQL's bigint) or a huge `offset` made LIMIT/OFFSET overflow in the
database: a 500. Every limit/offset is a whole number from 0 to MAX_OFFSET, else a 400 with the error body."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.pagination import LimitOffsetPagination

MAX_OFFSET = 2**63 - 1  # PostgreSQL bigint
MAX_LIMIT = 1000


def bounded_int(raw: Any, name: str, *, default: int, low: int = 0, high: int = MAX_OFFSET) -> int:
    """A query parameter as an int in [low, high] (values past `high` are capped, but only up to bigint)."""
    if raw is None or raw == "":
        return default
    text = str(raw).strip()
    if not (text.isascii() and text.isdigit()):  # str.isdigit() alone accepts "²", which int() refuses
        raise exceptions.ValidationError({name: [f"must be a whole number from {low} to {high}"]})
    value = int(text)
    if value > MAX_OFFSET:
        raise exceptions.ValidationError({name: [f"must be at most {MAX_OFFSET} (and is capped at {high})"]})
    return max(low, min(value, high))


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    max_limit = MAX_LIMIT

    def get_limit(self, request: Any) -> int | None:
        return bounded_int(
            request.query_params.get(self.limit_query_param),
            "limit",
            default=self.default_limit or 100,
            low=1,
            high=MAX_LIMIT,
        )

    def get_offset(self, request: Any) -> int:
        return bounded_int(request.query_params.get(self.offset_query_param), "offset", default=0)
