"""Forms of the identity pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import password_validation


class ProfileForm(forms.Form):
    full_name = forms.CharField(label="Name", max_length=200, required=False)


class TokenCreateForm(forms.Form):
    name = forms.CharField(label="Token name", max_length=100, help_text="What uses it, e.g. “BI nightly export”.")


class InvitationAcceptForm(forms.Form):
    full_name = forms.CharField(label="Your name", max_length=200, required=False)
    password1 = forms.CharField(label="Password", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    password2 = forms.CharField(
        label="Password again", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def __init__(self, *args: Any, email: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.email = email

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, second = data.get("password1"), data.get("password2")
        if first and second and first != second:
            self.add_error("password2", "The two passwords differ.")
        elif first:
            from tenants.models import User

            try:
                password_validation.validate_password(
                    first, User(email=self.email, full_name=data.get("full_name", ""))
                )
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return data
