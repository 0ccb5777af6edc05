"""The segments commands on the P360Command base: --json, one-line errors, locks, arguments unchanged."""

from __future__ import annotations

import json
import zlib
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from tests.cli import run_manage
from tests.segments.helpers import create_segment, event, independent

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def _json(capsys: Any, *args: str) -> Any:
    call_command(*args, "--json")
    return json.loads(capsys.readouterr().out)


def test_every_pass_command_answers_json(acme: Any, globex: Any, capsys: Any) -> None:
    timers = _json(capsys, "segments_timers", "--once", "--org", "acme")
    assert timers == {"orgs": {"acme": {"due_pairs": 0, "entries": 0, "exits": 0}}}
    sends = _json(capsys, "segments_deliver", "--once", "--org", "acme", "--org", "globex")
    assert sends == {"orgs": {s: {"sent": 0, "failed": 0, "skipped": 0, "deferred": 0} for s in ("acme", "globex")}}
    assert _json(capsys, "segments_retention", "--org", "globex") == {"orgs": {"globex": {"dropped": []}}}
    call_command("segments_timers", "--once", "--org", "acme")  # the text output is unchanged
    assert capsys.readouterr().out.strip() == "acme: 0 due pair(s), 0 entr(ies), 0 exit(s)"


def test_bulk_load_answers_json(acme: Any, acme_marketer: Any, login: Any, tmp_path: Any, capsys: Any) -> None:
    create_segment(login(acme_marketer), independent("json buyers", value=0))
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(event("j1")) + "\n{broken\n")
    result = _json(capsys, "segments_load", str(path), "--org", "acme")
    assert result == {"org": "acme", "accepted": 1, "duplicates": 0, "rejected": 1, "rejects_file": None}


def test_bad_arguments_are_one_line_errors(acme: Any) -> None:
    with pytest.raises(CommandError, match="need 0 <= worker < workers"):
        call_command("segments_evaluator", "--worker", "2", "--workers", "2")
    with pytest.raises(CommandError, match="--at must be an ISO-8601 time with a zone"):
        call_command("segments_timers", "--once", "--at", "yesterday")
    with pytest.raises(CommandError, match="unknown organisation: nope"):
        call_command("segments_retention", "--org", "nope")
    cli = run_manage(
        "segments_timers", "--once", "--org", "nope", env={"P360_DB_NAME": connection.settings_dict["NAME"]}
    )
    assert cli.returncode == 1 and cli.stderr.strip() == "error: unknown organisation: nope"


def _hold(name: str) -> int:
    key = zlib.crc32(f"p360:{name}".encode())
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [key])
    return key


def _release(key: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def test_locks_refuse_a_second_loop_and_retention_but_not_a_single_pass(acme: Any) -> None:
    env = {"P360_DB_NAME": connection.settings_dict["NAME"]}
    key = _hold("segments_timers")
    try:
        loop = run_manage("segments_timers", "--org", "acme", env=env)
        assert loop.returncode == 1
        assert loop.stderr.strip() == "error: another segments_timers is running; try again when it has finished"
        once = run_manage("segments_timers", "--once", "--org", "acme", env=env)  # a pass is idempotent: no lock
        assert once.returncode == 0, once.stderr
    finally:
        _release(key)
    key = _hold("segments_retention")
    try:
        refused = run_manage("segments_retention", "--org", "acme", "--json", env=env)
        assert refused.returncode == 1 and "another segments_retention is running" in refused.stderr
    finally:
        _release(key)
    ran = run_manage("segments_retention", "--org", "acme", "--json", env=env)
    assert ran.returncode == 0 and json.loads(ran.stdout) == {"orgs": {"acme": {"dropped": []}}}
