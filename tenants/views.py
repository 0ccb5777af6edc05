"""Identity pages for everyone: profile (name, password, MFA, API tokens, orgs) and invitation acceptance."""

from __future__ import annotations

from allauth.account.internal.flows.login import record_authentication
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from tenants import invitations
from tenants.access import orgs_visible_to
from tenants.forms import InvitationAcceptForm, ProfileForm, TokenCreateForm
from tenants.models import ApiToken, User
from tenants.services import api_token_create, api_token_revoke, user_set_name

NEW_TOKEN_SESSION_KEY = "p360_new_token"


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    form = ProfileForm(request.POST or None, initial={"full_name": user.full_name})
    if request.method == "POST" and form.is_valid():
        me = User.objects.get(pk=user.pk)  # the concrete row (request.user is a lazy proxy)
        user_set_name(user=me, full_name=form.cleaned_data["full_name"].strip(), actor=me)
        messages.success(request, "Your name was saved.")
        return redirect("profile")
    tokens = ApiToken.objects.filter(user=user).order_by("revoked_at", "-created_at")
    context = {
        "form": form,
        "token_form": TokenCreateForm(),
        "tokens": tokens,
        "active_token_count": sum(1 for token in tokens if token.revoked_at is None),
        "new_token": request.session.pop(NEW_TOKEN_SESSION_KEY, None),
        "orgs": orgs_visible_to(user).order_by("name"),
        "mfa_types": set(Authenticator.objects.filter(user=user).values_list("type", flat=True)),
        "sso_identities": list(user.external_identities.all()),
        "has_password": user.has_usable_password(),
    }
    return render(request, "tenants/profile.html", context)


@login_required
@require_POST
def token_create(request: HttpRequest) -> HttpResponse:
    form = TokenCreateForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the token a name (up to 100 characters).")
        return redirect("/profile/#tokens")
    _token, raw = api_token_create(user=_user(request), name=form.cleaned_data["name"], actor=_user(request))
    # Shown once, on the next page view; only its hash is stored.
    request.session[NEW_TOKEN_SESSION_KEY] = raw
    return redirect("/profile/#tokens")


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=token_id, user=_user(request))  # only your own: others 404
    api_token_revoke(token=token, actor=_user(request))
    messages.success(request, f"Revoked “{token.name}”. Requests with it now get 401.")
    return redirect("/profile/#tokens")


def invitation_accept(request: HttpRequest, key: str) -> HttpResponse:
    try:
        invitation = invitations.invitation_from_key(key)
    except invitations.InvitationInvalid as exc:
        invitations.invitation_refused(key, exc)
        return render(request, "tenants/invitation_invalid.html", {"message": exc.message}, status=410)
    if request.user.is_authenticated:
        auth.logout(request)  # accepting creates another account: never mix it with the current session
    form = InvitationAcceptForm(request.POST or None, email=invitation.email)
    if request.method == "POST" and request.POST.get("method") == "auth0" and settings.AUTH0_URL:
        request.session["p360_invitation_key"] = key
        return redirect("/accounts/oidc/auth0/login/?process=login&next=/")
    if request.method == "POST" and form.is_valid():
        try:
            user = invitations.invitation_accept(
                key=key, password=form.cleaned_data["password1"], full_name=form.cleaned_data["full_name"].strip()
            )
        except invitations.InvitationInvalid as exc:
            invitations.invitation_refused(key, exc)
            return render(request, "tenants/invitation_invalid.html", {"message": exc.message}, status=410)
        auth.login(request, user, backend="tenants.auth.RoleBackend")
        # They typed the password seconds ago: count it as fresh for allauth, so MFA set-up does not ask again.
        record_authentication(request, user, "password", email=user.email, reauthenticated=True)
        messages.success(request, f"Welcome to {invitation.org.name}.")
        return redirect(f"/o/{invitation.org.slug}/")
    return render(
        request,
        "tenants/invitation_accept.html",
        {"invitation": invitation, "form": form, "auth0_enabled": bool(settings.AUTH0_URL)},
    )
