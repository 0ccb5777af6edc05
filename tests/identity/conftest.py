"""Identity fixtures: the local OIDC provider (real HTTP, RS256) and helpers that walk a sign-in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from django.test import Client

from tests.browser.conftest import browser_page, chromium, live_url, screenshot_dir  # noqa: F401  (browser fixtures)
from tests.oidc_provider import OIDCProvider

CM_ROLE = "P360.CampaignManager"
SA_ROLE = "P360.SuperAdmin"


@pytest.fixture
def entra(settings: Any) -> Iterator[OIDCProvider]:
    """An Entra-shaped provider on 127.0.0.1 with P360 configured to use it."""
    provider = OIDCProvider(style="entra").start()
    for name, value in provider.settings().items():
        setattr(settings, name, value)
    settings.ENTRA_ROLE_MAP = {SA_ROLE: "super_admin", CM_ROLE: "campaign_manager"}
    settings.ENTRA_GROUP_MAP = {}
    try:
        yield provider
    finally:
        provider.stop()


def sso_login(client: Client, provider: OIDCProvider, next_url: str = "") -> Any:
    """Walk /oidc/authenticate/ -> provider /authorize (real HTTP) -> /oidc/callback/; returns the callback response."""
    start = client.get("/oidc/authenticate/" + (f"?next={next_url}" if next_url else ""))
    assert start.status_code == 302, start
    authorize_url = start["Location"]
    assert authorize_url.startswith(provider.url + "/authorize?")
    answer = httpx.get(authorize_url, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    callback = urlparse(answer.headers["Location"])
    assert callback.path == "/oidc/callback/"
    return client.get(f"{callback.path}?{callback.query}")
