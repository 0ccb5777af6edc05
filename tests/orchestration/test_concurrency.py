"""The budget guard under concurrent writers: real, separate PostgreSQL connections (one per thread),
committed data, no test transaction in between. Rows are removed afterwards (audit rows stay: append-only)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction
from django_tenants.utils import schema_context

from campaigns.models import Campaign, LineItem, Program
from campaigns.services import BudgetExceeded, campaign_save, line_item_save, program_save

pytestmark = pytest.mark.django_db


def in_thread(org: Any, fn: Callable[[], Any]) -> Any:
    """Run fn on a new thread (so: its own database connection, autocommit) inside org's schema."""
    out: dict[str, Any] = {}

    def body() -> None:
        try:
            with schema_context(org.schema_name):
                out["value"] = fn()
        except BaseException as exc:
            out["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(60)
    if "error" in out:
        raise out["error"]
    return out.get("value")


@pytest.fixture
def committed_campaign(acme: Any) -> Iterator[int]:
    def create() -> int:
        program = program_save(program=Program(name="Concurrency IO", budget="1000.00"), actor=None)
        return campaign_save(campaign=Campaign(program=program, name="Concurrency", budget="1000.00"), actor=None).pk

    pk = in_thread(acme, create)
    yield pk

    def drop() -> None:
        LineItem.objects.filter(campaign_id=pk).delete()
        Campaign.objects.filter(pk=pk).delete()
        Program.objects.filter(name="Concurrency IO").delete()

    in_thread(acme, drop)


def test_second_connection_waits_for_the_lock_and_is_refused(acme: Any, committed_campaign: int) -> None:
    a_saved, b_starting = threading.Event(), threading.Event()
    times: dict[str, float] = {}
    results: dict[str, Any] = {}

    def writer_a() -> None:
        with schema_context(acme.schema_name), transaction.atomic():
            line_item_save(line_item=LineItem(campaign_id=committed_campaign, name="A", budget="400.00"), actor=None)
            a_saved.set()
            b_starting.wait(10)
            time.sleep(0.3)  # B is now blocked on the campaign row lock
            times["a_commit"] = time.monotonic()
        connection.close()

    def writer_b() -> None:
        a_saved.wait(10)
        b_starting.set()
        try:
            with schema_context(acme.schema_name):
                line_item_save(
                    line_item=LineItem(campaign_id=committed_campaign, name="B", budget="700.00"), actor=None
                )
            results["b"] = "saved"
        except BudgetExceeded as exc:
            results["b"] = exc
        finally:
            times["b_done"] = time.monotonic()
            connection.close()

    threads = [threading.Thread(target=writer_a), threading.Thread(target=writer_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert isinstance(results["b"], BudgetExceeded), results
    assert times["b_done"] >= times["a_commit"]  # B waited for A's commit instead of reading stale sums
    names = in_thread(
        acme, lambda: sorted(LineItem.objects.filter(campaign_id=committed_campaign).values_list("name", flat=True))
    )
    assert names == ["A"]


def test_many_concurrent_writers_never_exceed_the_parent(acme: Any, committed_campaign: int) -> None:
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def writer(i: int) -> None:
        barrier.wait(10)
        try:
            with schema_context(acme.schema_name):
                line_item_save(
                    line_item=LineItem(campaign_id=committed_campaign, name=f"W{i}", budget="300.00"), actor=None
                )
            result = "saved"
        except BudgetExceeded:
            result = "refused"
        finally:
            connection.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["refused"] * 5 + ["saved"] * 3
    total = in_thread(
        acme,
        lambda: sum(
            LineItem.objects.filter(campaign_id=committed_campaign).values_list("budget", flat=True), Decimal(0)
        ),
    )
    assert total == Decimal("900.00")
