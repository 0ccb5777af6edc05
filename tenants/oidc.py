"""mozilla-django-oidc wired for Microsoft Entra ID: the backend, the callback view and the session refresh.

What the library leaves to us (it decodes with `verify_aud=False` and never checks `iss`): audience,
issuer, tenant, required claims and expiry are checked here with PyJWT; claims come from the verified
ID token (Entra's UserInfo has no `oid`, `tid`, `roles`, `groups`). A refused sign-in raises
`PermissionDenied` out of the backend so Django stops, sends `user_login_failed` (one audit row with
the reason, see `p360.core.audit.receivers`) and the callback view renders the reason.
"""

from __future__ import annotations

import logging
import time
from typing import Any, NoReturn

import jwt
import requests
from django.conf import settings
from django.contrib import auth
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.http import urlencode
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from p360.core.audit.services import record
from tenants.models import User
from tenants.sso import LoginRefused, check_claims, find_user, sync_staff_user

log = logging.getLogger(__name__)

SSO_SESSION_KEY = "p360_sso"  # "entra" in sessions signed in through Entra ID
REFRESH_TOKEN_KEY = "p360_oidc_refresh"
EXPIRY_KEY = "oidc_id_token_expiration"  # the name mozilla-django-oidc uses
FAILURE_ATTR = "p360_login_failure"  # on the request, read by the audit receiver and the failure page

_JWT_REASONS: list[tuple[type[Exception], str, str]] = [
    (jwt.ExpiredSignatureError, "expired", "The sign-in token has expired."),
    (jwt.InvalidAudienceError, "wrong_audience", "The sign-in token was issued for another application."),
    (jwt.InvalidIssuerError, "wrong_issuer", "The sign-in token comes from an unexpected issuer."),
    (jwt.InvalidSignatureError, "bad_signature", "The sign-in token's signature is not valid."),
    (jwt.MissingRequiredClaimError, "missing_claim", "The sign-in token lacks a required claim."),
    (jwt.ImmatureSignatureError, "not_yet_valid", "The sign-in token is not valid yet."),
]


def sso_enabled() -> bool:
    return bool(settings.ENTRA_SSO_ENABLED)


def decode_id_token(backend: OIDCAuthenticationBackend, token: str) -> dict[str, Any]:
    """Verify signature (JWKS, RS256 only), audience, issuer and expiry; translate failures to reasons."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise LoginRefused("malformed_token", "The sign-in token is malformed.") from exc
    if header.get("alg") != "RS256":
        raise LoginRefused("wrong_algorithm", f"The sign-in token uses {header.get('alg')!r}, not RS256.")
    try:
        key = backend.retrieve_matching_jwk(token)
    except SuspiciousOperation as exc:
        raise LoginRefused(
            "unknown_key", "The sign-in token was signed by a key the provider does not publish."
        ) from exc
    except requests.RequestException as exc:
        raise LoginRefused("provider_unreachable", "The sign-in provider's keys could not be fetched.") from exc
    try:
        return jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            audience=settings.OIDC_RP_CLIENT_ID,
            issuer=settings.ENTRA_ISSUER,
            leeway=settings.ENTRA_LEEWAY_SECONDS,
            options={"require": ["exp", "iat", "aud", "iss", "tid", "oid"]},
        )
    except jwt.PyJWTError as exc:
        for kind, code, message in _JWT_REASONS:
            if isinstance(exc, kind):
                raise LoginRefused(code, message) from exc
        raise LoginRefused("invalid_token", "The sign-in token is not valid.") from exc


class EntraOIDCBackend(OIDCAuthenticationBackend):
    """Signs staff in from Entra ID; inert for password logins and when SSO is not configured."""

    def authenticate(self, request: Any, **kwargs: Any) -> User | None:  # type: ignore[override]
        if request is None or "password" in kwargs or "nonce" not in kwargs or not sso_enabled():
            return None
        try:
            user = super().authenticate(request, **kwargs)
        except LoginRefused as exc:
            self._refuse(request, exc)
        except requests.HTTPError as exc:
            self._refuse(request, LoginRefused("token_exchange_failed", "The provider refused the sign-in code."))
            log.warning("Entra token exchange failed: %s", exc)
        except requests.RequestException:
            self._refuse(request, LoginRefused("provider_unreachable", "The sign-in provider could not be reached."))
        except SuspiciousOperation as exc:
            self._refuse(request, LoginRefused("invalid_token", str(exc)))
        if user is None:
            self._refuse(request, LoginRefused("refused", "The sign-in was refused."))
        request.p360_login_method = "entra"
        return user

    @staticmethod
    def _refuse(request: Any, exc: LoginRefused) -> NoReturn:
        request.session.pop(REFRESH_TOKEN_KEY, None)
        setattr(
            request, FAILURE_ATTR, {"method": "entra", "reason": exc.code, "message": exc.message, "email": exc.email}
        )
        raise PermissionDenied(exc.message)

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        claims = decode_id_token(self, token)
        check_claims(claims, nonce=kwargs.get("nonce"))
        return claims

    def get_token(self, payload: dict[str, Any]) -> dict[str, Any]:
        token_info: dict[str, Any] = super().get_token(payload)
        if token_info.get("refresh_token") and getattr(self, "request", None) is not None:
            self.request.session[REFRESH_TOKEN_KEY] = token_info["refresh_token"]
        return token_info

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> User:
        user = sync_staff_user(payload, create=settings.OIDC_CREATE_USER)
        self.request.session[SSO_SESSION_KEY] = "entra"
        return user

    def get_user(self, user_id: Any) -> User | None:
        # The library's get_user ignores is_active: a user deactivated in P360 is signed out at once.
        user = super().get_user(user_id)
        return user if user is not None and user.is_active else None

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        return dict(payload)  # Entra's UserInfo lacks oid/tid/roles/groups: the verified ID token is the source

    def refresh(self, request: HttpRequest) -> User:
        """Re-check a signed-in staff user with the provider (refresh token grant) and re-sync the role."""
        self.request = request
        refresh_token = request.session.get(REFRESH_TOKEN_KEY)
        if not refresh_token:
            raise LoginRefused("no_refresh_token", "Your sign-in needs renewing.")
        try:
            response = requests.post(
                self.OIDC_OP_TOKEN_ENDPOINT,
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": refresh_token,
                    "client_id": self.OIDC_RP_CLIENT_ID,
                    "client_secret": self.OIDC_RP_CLIENT_SECRET,
                    "scope": settings.OIDC_RP_SCOPES,
                },
                timeout=settings.OIDC_TIMEOUT,
            )
        except requests.RequestException as exc:
            raise LoginRefused("provider_unreachable", "The sign-in provider could not be reached.") from exc
        if response.status_code != 200:
            raise LoginRefused("refresh_refused", "Microsoft no longer accepts your sign-in.")
        token_info = response.json()
        claims = self.verify_token(token_info.get("id_token", ""), nonce=None)
        current = request.user
        if find_user(claims) != current:
            raise LoginRefused("identity_changed", "The refreshed sign-in belongs to another account.")
        user = sync_staff_user(claims, create=False)
        if token_info.get("refresh_token"):
            request.session[REFRESH_TOKEN_KEY] = token_info["refresh_token"]
        request.session[EXPIRY_KEY] = time.time() + settings.OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS
        return user


def sso_failure_page(request: HttpRequest, message: str, *, status: int = 403) -> HttpResponse:
    return render(request, "account/sso_failed.html", {"message": message, "sso_enabled": sso_enabled()}, status=status)


class EntraAuthenticateView(OIDCAuthenticationRequestView):
    """/oidc/authenticate/: starts the Entra sign-in (state, nonce, PKCE) when SSO is configured."""

    def get(self, request: HttpRequest) -> HttpResponse:  # type: ignore[override]
        if not sso_enabled():
            return sso_failure_page(request, "Sign-in with Microsoft is not configured.", status=404)
        return super().get(request)


class EntraCallbackView(OIDCAuthenticationCallbackView):
    """The library's callback, with a clear page and an audit row for every refusal."""

    @property
    def success_url(self) -> str:
        next_url = self.request.session.get("oidc_login_next")
        return next_url or settings.ENTRA_LOGIN_REDIRECT_URL

    def get(self, request: HttpRequest) -> HttpResponse:  # type: ignore[override]
        if not sso_enabled():
            return sso_failure_page(request, "Sign-in with Microsoft is not configured.", status=404)
        try:
            return super().get(request)
        except SuspiciousOperation:
            # Unknown state: a replayed or forged callback, or the sign-in began in another browser.
            record(action="auth.login_failed", after={"method": "entra", "reason": "unknown_state"})
            return sso_failure_page(request, "This sign-in link was already used or did not start here.")

    def login_failure(self) -> HttpResponse:
        error = self.request.GET.get("error")
        if error:  # the provider refused (user cancelled, account disabled, consent missing...)
            detail = str(self.request.GET.get("error_description") or error)[:200]
            record(action="auth.login_failed", after={"method": "entra", "reason": "provider_error", "detail": detail})
            return sso_failure_page(self.request, f"Microsoft did not sign you in: {detail}")
        failure = getattr(self.request, FAILURE_ATTR, None)
        if failure is None:  # e.g. no state in the session: nothing was authenticated, so record it here
            record(action="auth.login_failed", after={"method": "entra", "reason": "no_session_state"})
            return sso_failure_page(self.request, "The sign-in did not start in this browser session; try again.")
        return sso_failure_page(self.request, failure["message"])

    def login_success(self) -> HttpResponse:
        response = super().login_success()
        self.request.session[SSO_SESSION_KEY] = "entra"
        return response


class StaffSessionRefreshMiddleware:
    """Re-check SSO sessions with the provider once `OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS` have passed,
    before the request runs, for every method. (The library's SessionRefresh only handles GET, so a
    staff user whose role was removed could still POST.) A refused refresh signs the user out and the
    request is not served: nothing is written."""

    EXEMPT_PREFIXES = ("/oidc/", "/static/", "/healthz", "/accounts/logout/")

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            getattr(request, "session", None) is not None
            and request.session.get(SSO_SESSION_KEY) == "entra"
            and request.user.is_authenticated
            and not request.path.startswith(self.EXEMPT_PREFIXES)
            and time.time() >= float(request.session.get(EXPIRY_KEY) or 0)
        ):
            refused = self._refresh(request)
            if refused is not None:
                return refused
        return self.get_response(request)

    def _refresh(self, request: HttpRequest) -> HttpResponse | None:
        backend = EntraOIDCBackend()
        try:
            user = backend.refresh(request)
        except LoginRefused as exc:
            if exc.code == "no_refresh_token" and request.method in ("GET", "HEAD"):
                query = urlencode({"next": request.get_full_path()})
                return HttpResponseRedirect(f"/oidc/authenticate/?{query}")
            email = getattr(request.user, "email", "")
            record(
                action="auth.session_refresh_failed",
                actor=request.user if isinstance(request.user, User) else None,
                after={"method": "entra", "reason": exc.code, "path": request.path, "http_method": request.method},
            )
            auth.logout(request)
            return self._ended(request, exc.message, email)
        if not user.is_active:
            auth.logout(request)
            return self._ended(request, "Your P360 account is deactivated.", user.email)
        request.user = user
        return None

    @staticmethod
    def _ended(request: HttpRequest, message: str, email: str) -> HttpResponse:
        from p360.core.api_errors import (  # lazy: api_errors imports DRF, whose settings import this module
            error_response,
            is_api_path,
        )

        text = f"{message} You have been signed out; nothing was saved."
        if is_api_path(request.path):
            return error_response(401, text, "session_ended")
        return sso_failure_page(request, text, status=401)
