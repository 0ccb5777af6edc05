"""Per-request (or per-task) context: request id, acting user, organisation, client address.

Services read it to stamp audit rows and logs without every caller passing the request along.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class RequestContext:
    request_id: str = "-"
    user: str = "-"
    org: str = "-"
    ip: str | None = None
    user_agent: str = ""


_EMPTY = RequestContext()  # frozen, so sharing it as the default is safe
_current: contextvars.ContextVar[RequestContext] = contextvars.ContextVar("p360_context", default=_EMPTY)


def current() -> RequestContext:
    return _current.get()


def update(**changes: str | None) -> None:
    _current.set(replace(_current.get(), **changes))  # type: ignore[arg-type]


@contextmanager
def bound(**values: str | None) -> Iterator[RequestContext]:
    """Bind context values for the duration of a block (a request, a task)."""
    token = _current.set(replace(_current.get(), **values))  # type: ignore[arg-type]
    try:
        yield _current.get()
    finally:
        _current.reset(token)
