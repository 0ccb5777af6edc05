"""Page renders through Django's test client (in-process, the full middleware chain, no network).

Baseline: a plain view returning a tiny HttpResponse, mounted under the same org prefix (/o/<slug>/)
and requested by the same logged-in user, so it pays for the same middleware, session, user and
org lookup; the difference is what the page itself costs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from unittest import mock

from bench.common import Row, fmt_ms, fmt_ratio, goal_text, percentile, time_many

if TYPE_CHECKING:
    from django.test import Client

ORDER = 20
ORG_SLUG = "acme"
REQUESTS = 200
WARMUP = 10
GOAL_P95_SECONDS = 0.150
SUPER_ADMIN_EMAIL = "admin@p360.local"
MARKETER_EMAIL = "marketer@acme.example"


def _client_for(email: str) -> Client:
    from django.test import Client

    from tenants.models import User

    client = Client()
    client.force_login(User.objects.get(email=email))
    return client


def _timings(client: Client, path: str) -> list[float]:
    def get() -> None:
        response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} answered {response.status_code}, expected 200")

    return time_many(get, REQUESTS, warmup=WARMUP)


@contextmanager
def _plain_org_urlconf() -> Iterator[str]:
    """Serve bench.plain_urls as the org URLconf for a while; yields the plain view's path."""
    from django.test.utils import override_settings

    import tenants.middleware
    from bench.plain_urls import PLAIN_PATH

    # org_urlconf() caches one module per slug; an empty cache makes it build from the overridden setting.
    with override_settings(ORG_URLCONF="bench.plain_urls"), mock.patch.object(tenants.middleware, "_URLCONFS", {}):
        yield f"/o/{ORG_SLUG}/{PLAIN_PATH}"


def _render_row(workload: str, email: str, path: str) -> Row:
    client = _client_for(email)
    page = _timings(client, path)
    with _plain_org_urlconf() as plain_path:
        plain = _timings(client, plain_path)
    p50, p95 = percentile(page, 50), percentile(page, 95)
    base50, base95 = percentile(plain, 50), percentile(plain, 95)
    return Row(
        workload=workload,
        size=f"{REQUESTS} requests",
        p360=f"p50 {fmt_ms(p50)} / p95 {fmt_ms(p95)}",
        baseline=f"p50 {fmt_ms(base50)} / p95 {fmt_ms(base95)} (plain view)",
        ratio=f"p95 {fmt_ratio(p95, base95)}",
        goal=goal_text(f"p95 < {GOAL_P95_SECONDS * 1000:g} ms", p95 < GOAL_P95_SECONDS),
    )


def org_admin_changelist() -> Row:
    return _render_row("org admin changelist render", SUPER_ADMIN_EMAIL, f"/o/{ORG_SLUG}/admin/audiences/audience/")


def marketer_home() -> Row:
    return _render_row("marketer home render", MARKETER_EMAIL, f"/o/{ORG_SLUG}/")


def run() -> list[Row]:
    return [org_admin_changelist(), marketer_home()]
