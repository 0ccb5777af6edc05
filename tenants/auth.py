"""Authentication pieces: role-based permissions, API tokens (middleware and DRF)."""

from __future__ import annotations

from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.functional import SimpleLazyObject
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from p360.core.audit.services import record
from tenants.access import role_has_module, role_has_perm, token_and_org, user_and_org
from tenants.models import ApiToken, Organization, User, hash_token

LAST_USED_RESOLUTION = timedelta(minutes=1)


# The org slug of the URL while the org middleware resolves the session's user: RoleBackend.get_user then reads
# the user and that org's access in one statement (tenants.access.user_and_org).
ROUTE_SLUG: ContextVar[str | None] = ContextVar("p360_route_slug", default=None)


class RoleBackend(ModelBackend):
    """Email + password login; permissions come from the user's role (see `tenants.access`)."""

    def get_user(self, user_id: Any) -> User | None:
        slug = ROUTE_SLUG.get()
        if slug is None:
            return super().get_user(user_id)
        try:
            found = user_and_org(user_id, slug)
        except (TypeError, ValueError, ValidationError):
            return None  # a malformed id in the session, as ModelBackend's lookup would fail on it
        if found is None:
            return None
        user, org = found
        user._p360_route = (user.pk, slug, org)  # type: ignore[attr-defined]  # read by the org middleware
        return user if self.user_can_authenticate(user) else None

    def get_all_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        return set()

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        return bool(user_obj.is_active and getattr(user_obj, "role", None) and role_has_perm(user_obj.role, perm))

    def has_module_perms(self, user_obj: Any, app_label: str) -> bool:
        return bool(
            user_obj.is_active and getattr(user_obj, "role", None) and role_has_module(user_obj.role, app_label)
        )


def _token_from_header(request: HttpRequest) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    keyword, _, value = header.partition(" ")
    if keyword.lower() not in {"token", "bearer"} or not value.strip():
        return None
    return value.strip()


class InvalidToken(Exception):
    pass


def user_for_token(raw: str) -> User:
    """The active user a raw API token belongs to; audits use of a revoked token."""
    return token_route(raw, None)[0]


def token_route(raw: str, slug: str | None) -> tuple[User, Organization | None]:
    """The active user a raw API token belongs to and, for a URL under /o/<slug>/, that org if the user may
    see it (else None), read in one statement (tenants.access.token_and_org); audits use of a revoked token."""
    found = token_and_org(hash_token(raw), slug)
    if found is None:
        raise InvalidToken("Invalid API token.")
    token, org = found
    if token.revoked_at is not None:
        record(action="token.revoked_used", actor=token.user, entity=token, after={"name": token.name})
        raise InvalidToken("This API token has been revoked.")
    if not token.user.is_active:
        raise InvalidToken("The user of this API token is deactivated.")
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user, org


class ApiTokenMiddleware:
    """Authenticate `Authorization: Token <token>` before org routing, so one access check covers
    session and token requests alike. A bad token yields 401 (never a silent anonymous request)."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from p360.core.api_errors import is_api_path  # lazy: api_errors imports DRF, whose settings import this module

        # Tokens open the API only: pages and admins need a session (and its CSRF protection).
        raw = _token_from_header(request) if is_api_path(request.path) else None
        if raw is not None:
            from tenants.middleware import slug_from_path  # lazy: the org middleware imports DRF's error body

            slug = slug_from_path(request.path)
            try:
                user, org = token_route(raw, slug)
            except InvalidToken as exc:
                from p360.core.api_errors import (
                    error_response,  # lazy: api_errors imports DRF, whose settings import this module
                )

                return error_response(401, str(exc), "authentication_failed")
            request.user = SimpleLazyObject(lambda: user)  # type: ignore[assignment]
            request._p360_token_user = user  # type: ignore[attr-defined]
            if slug is not None:  # the org middleware's lookup, already answered for this user and slug
                request._p360_route = (user.pk, slug, org)  # type: ignore[attr-defined]
            request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]  # token requests carry no cookies
        return self.get_response(request)


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """DRF side of token auth: reuses the user the middleware resolved."""

    keyword = "Token"

    def authenticate(self, request: Request) -> tuple[User, None] | None:
        user = getattr(request._request, "_p360_token_user", None)
        if user is not None:
            return user, None
        raw = _token_from_header(request._request)
        if raw is None:
            return None
        try:
            return user_for_token(raw), None
        except InvalidToken as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
