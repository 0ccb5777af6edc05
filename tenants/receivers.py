"""allauth account events -> audit rows: password set/changed/reset and email confirmations."""

from __future__ import annotations

from typing import Any

from allauth.account import signals
from django.dispatch import receiver

from p360.core.audit.services import record
from tenants.models import User


def _user(user: Any) -> User:
    return User.objects.get(pk=user.pk)  # allauth may pass request.user, a lazy proxy


@receiver(signals.password_changed)
def _password_changed(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    user = _user(user)
    record(action="auth.password_changed", actor=user, entity=user)


@receiver(signals.password_set)
def _password_set(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    user = _user(user)
    record(action="auth.password_set", actor=user, entity=user)


@receiver(signals.password_reset)
def _password_reset(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    user = _user(user)
    record(action="auth.password_reset", actor=user, entity=user)


@receiver(signals.email_confirmed)
def _email_confirmed(sender: Any, request: Any, email_address: Any, **kwargs: Any) -> None:
    user = _user(email_address.user)
    record(action="auth.email_confirmed", actor=user, entity=user, after={"email": email_address.email})
