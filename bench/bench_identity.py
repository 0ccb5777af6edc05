"""Sign-in costs: a full Entra ID sign-in (authenticate -> local provider over HTTP -> callback with
JWKS fetch, RS256 verification, claim checks and role sync) and an SSO session refresh (refresh-token
grant + verification + role sync, run before a request once the refresh window has passed).

Baselines, same run and same client: a password sign-in through the allauth form (the production
password hasher), and a plain request of the same page without a refresh due.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlparse

from bench.common import Row, fmt_ms, fmt_ratio, goal_text, percentile, time_many

ORDER = 40
RUNS = 30
WARMUP = 3
GOAL_P95_SECONDS = 0.5
EMAIL = "bench.sso@p360.local"
BENCH_TID = "6b7d1f1c-0000-4000-8000-00000000b360"
BENCH_OID = "0c1d2e3f-0000-4000-8000-00000000b360"


def _sso_login(client: Any, provider: Any) -> None:
    import httpx

    start = client.get("/oidc/authenticate/")
    answer = httpx.get(start["Location"], follow_redirects=False)
    callback = urlparse(answer.headers["Location"])
    response = client.get(f"{callback.path}?{callback.query}")
    if response.status_code != 302 or response["Location"] != "/admin/":
        raise RuntimeError(f"SSO sign-in failed: {response.status_code}")


def run() -> list[Row]:
    from django.core.cache import cache
    from django.test import Client
    from django.test.utils import override_settings

    from p360.demo import DEMO_PASSWORD
    from tenants.models import ExternalIdentity, IdentityProvider, User
    from tests.oidc_provider import OIDCProvider

    existing = User.objects.filter(email=EMAIL).first()
    if existing is not None:  # from an earlier run: make sure it is the same identity, active
        User.objects.filter(pk=existing.pk).update(is_active=True)
        ExternalIdentity.objects.get_or_create(
            user=existing, provider=IdentityProvider.ENTRA, tenant=BENCH_TID, subject=BENCH_OID
        )
    provider = OIDCProvider(tenant_id=BENCH_TID).start()
    overrides = {**provider.settings(), "ENTRA_ROLE_MAP": {"P360.CampaignManager": "campaign_manager"}}
    provider.add_user(email=EMAIL, roles=["P360.CampaignManager"], oid=BENCH_OID)
    try:
        with override_settings(**overrides):
            sso = time_many(lambda: _sso_login(Client(), provider), RUNS, warmup=WARMUP)

            def password_login() -> None:
                cache.clear()  # allauth's per-IP sign-in rate limit would otherwise stop the loop
                client = Client()
                response = client.post("/accounts/login/", {"login": "manager@p360.local", "password": DEMO_PASSWORD})
                if response.status_code != 302:
                    raise RuntimeError(f"password sign-in failed: {response.status_code}")

            password = time_many(password_login, RUNS, warmup=WARMUP)

            client = Client()
            _sso_login(client, provider)

            def refreshed_request() -> None:
                session = client.session
                session["oidc_id_token_expiration"] = time.time() - 1
                session.save()
                if client.get("/orgs/").status_code != 200:
                    raise RuntimeError("refresh failed")

            def plain_request() -> None:
                if client.get("/orgs/").status_code != 200:
                    raise RuntimeError("request failed")

            refreshed = time_many(refreshed_request, RUNS, warmup=WARMUP)
            plain = time_many(plain_request, RUNS, warmup=WARMUP)
    finally:
        provider.stop()
        # The bench user stays (fixed tid + oid, so the next run signs the same account in again).

    def row(workload: str, ours: list[float], base: list[float], base_name: str) -> Row:
        p50, p95, b50, b95 = percentile(ours, 50), percentile(ours, 95), percentile(base, 50), percentile(base, 95)
        return Row(
            workload=workload,
            size=f"{RUNS} runs",
            p360=f"p50 {fmt_ms(p50)} / p95 {fmt_ms(p95)}",
            baseline=f"p50 {fmt_ms(b50)} / p95 {fmt_ms(b95)} ({base_name})",
            ratio=f"p95 {fmt_ratio(p95, b95)}",
            goal=goal_text(f"p95 < {GOAL_P95_SECONDS * 1000:g} ms", p95 < GOAL_P95_SECONDS),
        )

    return [
        row("Entra sign-in (3 HTTP legs, RS256, role sync)", sso, password, "password sign-in"),
        row("SSO session refresh before a request", refreshed, plain, "same request, no refresh due"),
    ]
