"""UID2 mapping through the official SDK against a local operator speaking the real envelope."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from activation.identities import map_identities, match_stats
from activation.models import IdentityStatus, Uid2Identity
from activation.uid2 import Item, Uid2Error, Uid2Settings, map_batch
from tests.activation.conftest import h, person
from tests.activation.uid2_operator import API_KEY, SECRET, raw_uid2
from tests.audiences.builder_helpers import make_imported
from tests.cli import run_manage

pytestmark = pytest.mark.django_db


def conf(operator: Any, **kw: Any) -> Uid2Settings:
    base = {"base_url": operator.base_url, "api_key": API_KEY, "secret_key": SECRET, "backoff_base": 0.01,
            "backoff_cap": 0.05}  # fmt: skip
    return Uid2Settings(**{**base, **kw})


def test_sdk_envelope_roundtrip_maps_emails_and_phones(operator: Any) -> None:
    items = [Item("email", h("user@example.com")), Item("phone", h("+12345678901")),
             Item("email", h("optout@example.com")), Item("email", "not-a-hash")]  # fmt: skip
    result = map_batch(conf(operator), items)
    by = {o.hashed: o for o in result.outcomes}
    assert by[h("user@example.com")].uid2 == raw_uid2(h("user@example.com"))
    assert by[h("user@example.com")].refresh_from > timezone.now()
    assert by[h("+12345678901")].status == "mapped"
    assert by[h("optout@example.com")].status == "optout"
    assert by["not-a-hash"].status == "invalid"


def test_wrong_secret_and_key_are_clear_errors(operator: Any) -> None:
    import base64

    with pytest.raises(Uid2Error, match=r"HTTP 400.*ClientSecret"):
        map_batch(conf(operator, secret_key=base64.b64encode(b"x" * 32).decode()), [Item("email", h("a@b.com"))])
    with pytest.raises(Uid2Error, match="HTTP 401"):
        map_batch(conf(operator, api_key="wrong"), [Item("email", h("a@b.com"))])


def test_retries_429_and_5xx_with_retry_after_then_gives_up(operator: Any) -> None:
    slept: list[float] = []
    operator.retry_after = 2
    operator.fail_next([429, 503])
    result = map_batch(conf(operator, sleep=slept.append), [Item("email", h("a@b.com"))])
    assert result.attempts == 3 and result.outcomes[0].status == "mapped"
    assert slept[0] == 2.0  # Retry-After honoured on 429
    assert 0 <= slept[1] <= 0.02  # backoff (jittered) on 503 without Retry-After
    operator.fail_next([500] * 10)
    with pytest.raises(Uid2Error, match="HTTP 500"):
        map_batch(conf(operator, max_retries=2, sleep=lambda s: None), [Item("email", h("a@b.com"))])


def test_batches_in_parallel_records_identities_and_match_rate(operator: Any, acme: Any) -> None:
    operator.delay = 0.05
    rows = [person(i) for i in range(40)] + [
        person(
            99, email="optout@example.com", email_normalized="optout@example.com", email_sha256=h("optout@example.com")
        )
    ]
    rows.append({"first_name": "NoIds"})
    with schema_context(acme.schema_name):
        audience = make_imported("UID2 people", rows)
        result = map_identities(audience=audience, due_only=False, conf=conf(operator, batch_size=10, parallel=4))
        assert result["mapped"] == 81 and result["opted_out"] == 1 and result["unmapped"] == 0
        assert operator.requests == 9 and operator.max_in_flight > 1  # 82 items in batches of 10, several in flight
        ident = Uid2Identity.objects.get(kind="email", hashed=h("person1@example.com"))
        assert ident.status == IdentityStatus.MAPPED and ident.uid2 == raw_uid2(ident.hashed)
        assert ident.refresh_from is not None and ident.previous_uid2 == ""
        opted = Uid2Identity.objects.get(kind="email", hashed=h("optout@example.com"))
        assert opted.status == IdentityStatus.OPTOUT and opted.opted_out_at is not None
        stats = match_stats(audience)
        # 42 records: 40 mapped, 1 opted out (its phone maps but the person opted out), 1 without identifiers
        assert stats["records"] == 42 and stats["mapped"] == 40 and stats["opted_out"] == 1
        assert result["match_rate"] == round(40 / 42, 4)


def test_due_only_sweep_remaps_only_due_records_and_keeps_previous(operator: Any, acme: Any) -> None:
    with schema_context(acme.schema_name):
        audience = make_imported("Sweep", [person(i) for i in range(6)])
        map_identities(audience=audience, due_only=False, conf=conf(operator))
        assert operator.items == 12
        due = h("person2@example.com")
        Uid2Identity.objects.filter(kind="email", hashed=due).update(refresh_from=timezone.now())
        operator.rotate()
        before = operator.items
        result = map_identities(audience=audience, due_only=True, conf=conf(operator))
        assert operator.items - before == 1 and result["refreshed"] == 1
        ident = Uid2Identity.objects.get(kind="email", hashed=due)
        assert ident.uid2 == raw_uid2(due, 1) and ident.previous_uid2 == raw_uid2(due, 0)
        untouched = Uid2Identity.objects.get(kind="email", hashed=h("person3@example.com"))
        assert untouched.uid2 == raw_uid2(untouched.hashed, 0)


def test_uid2_map_command_json_and_other_org_audience(operator: Any, acme: Any, globex: Any, settings: Any) -> None:
    """Through manage.py in a subprocess (its own settings from the environment), on committed data."""
    pytest.importorskip("uid2_client")
    with schema_context(acme.schema_name):
        audience = make_imported("CLI people", [person(i) for i in range(5)])
    from django.db import connection

    env = {
        "P360_DB_NAME": connection.settings_dict["NAME"],
        "P360_UID2_BASE_URL": operator.base_url,
        "P360_UID2_API_KEY": API_KEY,
        "P360_UID2_SECRET_KEY": SECRET,
    }
    # The subprocess cannot see this test's uncommitted rows, so exercise the command in-process too.
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("uid2_map", "--org", "acme", "--audience", str(audience.pk), "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert {"mapped", "unmapped", "opted_out", "refreshed", "match_rate"} <= set(data)
    assert data["mapped"] == 10 and data["match_rate"] == 1.0
    bad = run_manage("uid2_map", "--org", "globex", "--audience", "987654", "--json", env=env)
    assert bad.returncode != 0 and "unknown audience 987654" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_a_hung_operator_times_out_into_a_clear_failed_job(operator: Any, acme: Any, settings: Any) -> None:
    """The SDK's own call has no timeout: an operator that accepts and never answers must fail the job, not hang."""
    import time

    from p360.core.jobs.services import job_run_inline

    operator.delay = 3.0  # answers long after our timeout
    settings.P360_UID2_TIMEOUT = 0.3
    settings.P360_UID2_MAX_RETRIES = 1
    with schema_context(acme.schema_name):
        make_imported("Hung", [person(i) for i in range(3)])
    started = time.monotonic()
    job = job_run_inline(kind="activation.uid2_map", org=acme, params={})
    assert time.monotonic() - started < 5.5  # without the timeout: two attempts of the operator's 3 s, >= 6 s
    assert job.status == "failed"
    assert "UID2 operator cannot be reached: no answer within 0.3 s (2 attempt(s))" in job.error
    operator.delay = 0.0


def test_the_match_rate_is_stored_until_the_identities_or_the_records_change(operator: Any, acme: Any) -> None:
    """The audience page reads the stored figures (a 10M-record count takes seconds); a mapping run, or a new
    version of the records, makes the next read recompute them."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with schema_context(acme.schema_name):
        audience = make_imported("Stored rate", [person(i) for i in range(4)])
        before = match_stats(audience)
        assert before["records"] == 4 and before["mapped"] == 0
        with CaptureQueriesContext(connection) as queries:
            assert match_stats(audience) == before
        assert not any("count(*)" in q["sql"] for q in queries.captured_queries)  # served from the stored row
        map_identities(audience=audience, due_only=False, conf=conf(operator))
        assert match_stats(audience)["mapped"] == 4  # the identities changed: recomputed
        newer = make_imported("Stored rate", [person(i) for i in range(6)])
        assert match_stats(newer)["records"] == 6
