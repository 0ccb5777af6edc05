"""Authentication events -> audit rows (signals are the only hook Django gives for these).

Each row says how (`method`: password, entra, auth0) and, for failures, why (`reason`); the IP and
user agent come from the request context like every audit row.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from p360.core.audit.services import record

_BACKEND_METHODS = {"EntraOIDCBackend": "entra", "RoleBackend": "password", "AuthenticationBackend": "password"}


@receiver(user_logged_in)
def audit_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    backend = (getattr(user, "backend", "") or "").rsplit(".", 1)[-1]
    method = getattr(request, "p360_login_method", None) or _BACKEND_METHODS.get(backend, backend)
    # A marketer's sign-ins carry their org, so the org's campaign managers see them in its audit log.
    org = user.memberships.select_related("org").first() if getattr(user, "role", "") == "marketer" else None
    record(
        action="auth.login",
        actor=user,
        org=org.org if org is not None else None,
        entity_type="tenants.user",
        entity_id=user.pk,
        after={"method": method, "backend": backend},
    )


@receiver(user_logged_out)
def audit_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        # request.user is a lazy proxy here: name the entity explicitly (type() of the proxy has no _meta)
        record(action="auth.logout", actor=user, entity_type="tenants.user", entity_id=user.pk)


@receiver(user_login_failed)
def audit_login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    failure = getattr(request, "p360_login_failure", None)
    if failure is not None:  # set by a single sign-on backend with its reason
        email = str(failure.get("email") or "")
        after = {k: v for k, v in failure.items() if k != "message"}
        record(action="auth.login_failed", actor_email=email, after=after)
        return
    email = str(credentials.get("email") or credentials.get("username") or "")
    record(action="auth.login_failed", actor_email=email, after={"email": email, "method": "password"})
