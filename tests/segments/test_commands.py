"""Bulk load command: line-numbered rejects, idempotent re-run, evaluation; tasks run per org."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from django_q.models import Schedule

from p360.core.jobs.schedules import ensure_schedules
from tests.segments.helpers import create_segment, event, independent, user_segments

pytestmark = pytest.mark.django_db


def test_bulk_load_reports_bad_lines_and_reruns_without_doubling(acme, acme_marketer, login, tmp_path, capsys):
    client = login(acme_marketer)
    create_segment(client, independent("buyers", value=1))
    path = tmp_path / "events.jsonl"
    lines = [
        json.dumps(event("u1")),
        json.dumps(event("u1")),
        "{broken",
        json.dumps({**event("u2"), "event_type": "x"}),
        "",
        json.dumps(event("u2")),
    ]
    path.write_text("\n".join(lines) + "\n")
    rejects = tmp_path / "rejects.jsonl"
    call_command("segments_load", str(path), "--org", "acme", "--rejects", str(rejects))
    out = capsys.readouterr()
    assert "3 accepted, 0 duplicate(s), 2 rejected" in out.out
    assert "line 3:" in out.err and "line 4:" in out.err
    assert [json.loads(r)["line"] for r in rejects.read_text().splitlines()] == [3, 4]
    assert user_segments(client, "u1") == ["buyers"] and user_segments(client, "u2") == []
    call_command("segments_load", str(path), "--org", "acme")
    assert "0 accepted, 3 duplicate(s), 2 rejected" in capsys.readouterr().out
    with pytest.raises(CommandError):
        call_command("segments_load", str(tmp_path / "missing.jsonl"), "--org", "acme")
    with pytest.raises(CommandError):
        call_command("segments_load", str(path), "--org", "nope")


def test_scheduled_tasks_run_inside_each_org(acme, globex, acme_marketer, login):
    from segments import tasks

    client = login(acme_marketer)
    create_segment(client, independent("buyers", value=0))
    assert tasks.run_timers_all_orgs() >= 0
    assert tasks.deliver_all_orgs() >= 0
    assert tasks.retention_all_orgs() >= 0


def test_segment_schedules_are_registered_with_the_core():
    ensure_schedules()
    ensure_schedules()  # by name: a second pass changes nothing
    rows = Schedule.objects.filter(name__startswith="p360: segment").order_by("name")
    assert [(s.name, s.func, s.schedule_type, s.minutes) for s in rows] == [
        ("p360: segment audience refresh", "segments.audience_refresh.start_due_all_orgs", Schedule.MINUTES, 1),
        ("p360: segment event retention", "segments.tasks.retention_all_orgs", Schedule.MINUTES, 24 * 60),
        ("p360: segment sends", "segments.tasks.deliver_all_orgs", Schedule.MINUTES, 1),
        ("p360: segment timers", "segments.tasks.run_timers_all_orgs", Schedule.MINUTES, 1),
    ]


def test_bulk_load_rejects_a_line_nested_too_deep_and_loads_the_rest(acme, acme_marketer, login, tmp_path, capsys):
    client = login(acme_marketer)
    create_segment(client, independent("deep-buyers", value=1))
    path = tmp_path / "events.jsonl"
    path.write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}\n" + json.dumps(event("u9")) + "\n")
    call_command("segments_load", str(path), "--org", "acme")
    out = capsys.readouterr()
    assert "1 accepted, 0 duplicate(s), 1 rejected" in out.out and "line 1:" in out.err


def test_one_orgs_failure_does_not_stop_the_scheduled_pass_for_the_others(acme, globex, monkeypatch):
    from django.db import connection

    from segments import evaluator, tasks

    ran: list[str] = []

    class Result:
        transitions: list[object] = []

    def run_timers() -> Result:
        if connection.schema_name == acme.schema_name:
            raise RuntimeError("boom")
        ran.append(connection.schema_name)
        return Result()

    monkeypatch.setattr(evaluator, "run_timers", run_timers)
    with pytest.raises(RuntimeError, match="failed for acme"):
        tasks.run_timers_all_orgs()
    assert globex.schema_name in ran
