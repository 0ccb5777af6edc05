"""Trust 33: every API operation of the OpenAPI document, fuzzed by schemathesis, never answers a 5xx.

The schema is read from the running app (`/api/schema/`), so new endpoints are fuzzed as soon as they are
documented. Requests go through the real WSGI stack (middleware, org routing, token auth) in-process, inside the
test's transaction. Each operation is run for acme with acme's token, and again with acme's token on globex's
URLs, which must never succeed (trust 1/2: another org's prefix is 404 whatever the request).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenants.services import api_token_create

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

# Examples per operation: enough to reach bad types, empty and huge values, odd unicode; small enough for CI.
EXAMPLES = 12
# Operations that would start real background work per example (a tus upload writes files; imports queue jobs);
# their bad input is covered by their own tests. Matched by path prefix under /o/{slug}/api/v1/.
SKIP_PREFIXES = ("/o/{slug}/api/v1/uploads",)


def _operations(schema: Any) -> list[Any]:
    operations = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if any(operation.path.startswith(prefix) for prefix in SKIP_PREFIXES):
            continue
        operations.append(operation)
    return operations


@pytest.fixture
def fuzz_schema(acme_marketer: Any) -> Iterator[tuple[Any, str]]:
    # The WSGI handler closes the connection after each request; the test client avoids that the same way, so
    # every request stays inside the test's transaction (and is rolled back with it).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        _, token = api_token_create(user=acme_marketer, name="fuzz")
        app = get_wsgi_application()
        headers = {"Authorization": f"Token {token}"}
        yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", app, headers=headers), token
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _fuzz(operation: Any, token: str, slug: str, check: Any) -> None:
    """Fuzz one operation; an `{id}` is tried both generated and pinned to 1 (a primary key both orgs hold)."""
    fixed: dict[str, Any] = {"slug": slug} if "{slug}" in operation.path else {}
    variants = [fixed, {**fixed, "id": 1}] if "{id}" in operation.path else [fixed]
    for path_parameters in variants:
        _fuzz_variant(operation, token, path_parameters or None, check)


def _fuzz_variant(operation: Any, token: str, path_parameters: dict[str, Any] | None, check: Any) -> None:
    strategy = operation.as_strategy(path_parameters=path_parameters, headers={"Authorization": f"Token {token}"})

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy, _=st.just(None))
    def run(case: Any, _: None) -> None:
        response = case.call()
        check(case, response)

    run()


def test_no_operation_answers_a_server_error(fuzz_schema: tuple[Any, str]) -> None:
    schema, token = fuzz_schema
    operations = _operations(schema)
    assert len(operations) >= 8, "the OpenAPI document lost its operations"
    failures: list[str] = []

    def no_5xx(case: Any, response: Any) -> None:
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")

    for operation in operations:
        _fuzz(operation, token, "acme", no_5xx)
    assert not failures, "\n".join(failures[:20])


def test_a_token_never_opens_another_orgs_operations(fuzz_schema: tuple[Any, str]) -> None:
    schema, token = fuzz_schema
    org_operations = [op for op in _operations(schema) if "{slug}" in op.path]
    assert org_operations
    leaks: list[str] = []

    def refused(case: Any, response: Any) -> None:
        if response.status_code != 404:
            leaks.append(f"{case.method} {case.formatted_path} -> {response.status_code}")

    for operation in org_operations:
        _fuzz(operation, token, "globex", refused)
    assert not leaks, "\n".join(leaks[:20])
