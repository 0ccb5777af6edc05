"""Identity pages in a real browser (headless Chromium): "Sign in with Microsoft" end to end against
the local provider, the profile page with a new API token, and the invitation page. Screenshots go
to var/screenshots/ (identity-*.png)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.test_login_flows import path_of, shoot, sign_in
from tests.identity.conftest import CM_ROLE

pytestmark = [pytest.mark.browser, pytest.mark.django_db]


def test_staff_signs_in_with_microsoft(browser_page: Any, screenshot_dir: Any, entra: Any, acme: Any) -> None:
    from tenants.models import ExternalIdentity, IdentityProvider, Role
    from tenants.services import user_create

    cm = user_create(email="cm.browser@p360.test", role=Role.CAMPAIGN_MANAGER, orgs=[acme])
    oid = entra.add_user(email=cm.email, roles=[CM_ROLE], name="Browser Manager")
    ExternalIdentity.objects.create(user=cm, provider=IdentityProvider.ENTRA, tenant=entra.tenant_id, subject=oid)
    page = browser_page
    page.goto("/accounts/login/")
    button = page.get_by_role("link", name="Sign in with Microsoft")
    expect(button).to_be_visible()
    shoot(page, screenshot_dir, "identity-login-page.png")
    with page.expect_navigation(url=re.compile(r"/admin/$")):
        button.click()
    assert path_of(page) == "/admin/"
    page.goto("/admin/tenants/organization/")
    results = page.locator("#result_list")
    expect(results).to_contain_text("Acme Corporation")
    expect(results).not_to_contain_text("Globex Industries")
    shoot(page, screenshot_dir, "identity-sso-admin.png")


def test_bad_token_page(browser_page: Any, screenshot_dir: Any, entra: Any) -> None:
    entra.add_user(email="x@p360.test", roles=[CM_ROLE])
    entra.fault = "wrong_aud"
    page = browser_page
    page.goto("/oidc/authenticate/")
    expect(page.get_by_role("heading", name="Sign-in refused")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("another application")
    shoot(page, screenshot_dir, "identity-sso-refused.png")


def test_marketer_profile_and_new_token(browser_page: Any, screenshot_dir: Any) -> None:
    page = browser_page
    sign_in(page, "marketer@acme.test")
    page.goto("/profile/")
    expect(page.get_by_role("heading", name="Your profile")).to_be_visible()
    page.get_by_placeholder("Token name, e.g. BI nightly export").fill("Nightly export")
    with page.expect_navigation():
        page.get_by_role("button", name="Create token").click()
    expect(page.locator("#new-token")).to_contain_text("p360_")
    expect(page.get_by_role("cell", name="Nightly export", exact=True)).to_be_visible()
    shoot(page, screenshot_dir, "identity-profile.png")


def test_invitation_page(browser_page: Any, screenshot_dir: Any, acme: Any, manager: Any) -> None:
    from tenants.invitations import invitation_create, invitation_path

    invitation = invitation_create(
        org=acme, email="new@acme.test", role="marketer", actor=manager, base_url="http://x/"
    )
    page = browser_page
    page.goto(invitation_path(invitation))
    expect(page.get_by_role("heading", name="Join Acme Corporation")).to_be_visible()
    shoot(page, screenshot_dir, "identity-invitation.png")
    page.get_by_label("Your name").fill("New Person")
    page.get_by_label("Password", exact=True).fill("a-fresh-pass-phrase-42")
    page.get_by_label("Password again").fill("a-fresh-pass-phrase-42")
    with page.expect_navigation():
        page.get_by_role("button", name="Set password and continue").click()
    assert path_of(page) == "/o/acme/"


def test_marketer_of_org_requiring_mfa_sets_it_up(
    browser_page: Any, screenshot_dir: Any, acme: Any, manager: Any
) -> None:
    from allauth.mfa.models import Authenticator

    from tenants.services import org_update
    from tests.conftest import PASSWORD
    from tests.identity.helpers import totp_code

    org_update(org=acme, actor=manager, require_mfa=True)
    page = browser_page
    sign_in(page, "marketer@acme.test")
    page.goto("/o/acme/")  # -> set-up page; allauth first asks for the password again when not fresh
    if "/accounts/reauthenticate/" in page.url:
        page.locator("input[name='password']").fill(PASSWORD)
        with page.expect_navigation():
            page.locator("form:has(input[name='password']) button[type='submit']").click()
    assert "/accounts/2fa/totp/activate/" in page.url, page.url
    shoot(page, screenshot_dir, "identity-mfa-setup.png")
    from django.contrib.sessions.models import Session

    session_key = next(c["value"] for c in page.context.cookies() if c["name"] == "sessionid")
    secret = Session.objects.get(session_key=session_key).get_decoded()["mfa.totp.secret"]
    page.locator("input[name='code']").fill(totp_code(secret))
    with page.expect_navigation():
        page.locator("form:has(input[name='code']) button[type='submit']").click()
    assert Authenticator.objects.filter(user__email="marketer@acme.test", type="totp").exists()
    page.goto("/o/acme/")
    expect(page.locator("h1")).to_have_text("Acme Corporation")


def test_campaign_manager_invitation_list(browser_page: Any, screenshot_dir: Any, acme: Any, manager: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from tenants.invitations import invitation_create
    from tenants.models import Invitation

    for email in ("pending@acme.test", "late@acme.test"):
        invitation_create(org=acme, email=email, role="marketer", actor=manager, base_url="http://x/")
    Invitation.objects.filter(email="late@acme.test").update(expires_at=timezone.now() - timedelta(days=1))
    page = browser_page
    sign_in(page, "manager@test.local")
    page.goto("/admin/tenants/invitation/")
    results = page.locator("#result_list")
    expect(results).to_contain_text("pending@acme.test")
    expect(results).to_contain_text("expired")
    shoot(page, screenshot_dir, "identity-admin-invitations.png")
    page.goto("/admin/tenants/invitation/add/")
    expect(page.locator("select[name='org'] option")).to_have_count(2)  # the empty choice and acme
    shoot(page, screenshot_dir, "identity-admin-invite.png")
