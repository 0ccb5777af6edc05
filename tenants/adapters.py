"""django-allauth policy: accounts are created by staff and invitations, never by open sign-up."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False

    def get_login_redirect_url(self, request: HttpRequest) -> str:
        from p360.views import landing_url_for

        return landing_url_for(request.user)  # type: ignore[arg-type]
