"""django-axes hooks: which sign-ins it counts, under which name, and the page a locked pair sees.

Axes locks an (email, IP) pair for `AXES_COOLOFF_TIME`; allauth's own rate limits add a per-IP limit
and a per-(email, IP) limit (tenants.adapters keys it so), both expiring. Nothing is limited per email
alone: failures from one address never lock the victim out of another. Single sign-on callbacks carry no password and are not counted here (the
provider does its own brute-force protection; a bad token is refused and audited instead).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from p360.core.audit.services import record


def axes_username(request: HttpRequest | None, credentials: dict[str, Any] | None) -> str | None:
    """The email being tried: from the credentials Django passes, else the allauth form field."""
    value = (credentials or {}).get("email") or (credentials or {}).get("username")
    if not value and request is not None:
        value = request.POST.get("login") or request.POST.get("email")
    return str(value).strip().lower() if value else None


def axes_not_a_password_login(request: HttpRequest | None, credentials: dict[str, Any] | None) -> bool:
    """Whitelist (for axes) every authentication that is not an email + password attempt."""
    return "password" not in (credentials or {})


def lockout_response(request: HttpRequest, original_response: Any = None, credentials: Any = None) -> HttpResponse:

    minutes = round(float(settings.AXES_COOLOFF_TIME) * 60)
    email = axes_username(request, credentials) or ""
    record(action="auth.locked_out", actor_email=email, after={"email": email, "minutes": minutes})
    return render(
        request,
        "account/lockout.html",
        {"minutes": minutes, "failure_limit": settings.AXES_FAILURE_LIMIT},
        status=429,
    )
