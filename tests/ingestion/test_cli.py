"""`ingest` and `set_cpm` as an operator runs them: --help, one-line errors, non-zero exits."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.cli import run_manage

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def cli(*args: str):
    return run_manage(*args, env={"P360_DB_NAME": connection.settings_dict["NAME"]})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "bombora", "x.csv"], "no such file"),
        (["ingest", "bombora", "x.csv", "--org", "acme"], "Bombora data is global"),
        (["ingest", "surfside", "/nonexistent/file.csv", "--org", "acme"], "no such file"),
        (["ingest", "surfside", "--org", "nope"], "unknown or inactive organisation 'nope'"),
        (["ingest", "facebook", "--org", "acme"], "facebook needs a FILE"),
        (["ingest", "vibe", "--date", "2026-11-20"], "--org SLUG"),
        (["ingest", "surfside", "--org", "acme", "--date", "20/11/2026"], "not a date"),
        (["ingest", "myspace", "x.csv"], "invalid choice"),
        (["set_cpm", "--org", "acme", "-1", "--effective-date", "2026-01-01"], "positive"),
    ],
)
def test_bad_input_one_line_error_non_zero_exit(args, message):
    completed = cli(*args)
    assert completed.returncode != 0
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], completed.stderr


def test_help():
    for command in ("ingest", "set_cpm"):
        completed = cli(command, "--help")
        assert completed.returncode == 0 and "--json" in completed.stdout and "--org" in completed.stdout
