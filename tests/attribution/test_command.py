"""The `attribution` command: --json result, one-line errors."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.attribution.helpers import DAY, conv, imp, insert_events

pytestmark = pytest.mark.django_db


def test_json_result_for_all_models(acme: Any) -> None:
    insert_events(acme, [imp(-2, "A"), imp(-1, "B"), conv(0, value=9.0)])
    out = io.StringIO()
    call_command(
        "attribution", "--org", "acme", "--start", DAY.isoformat(), "--end", DAY.isoformat(), "--json", stdout=out
    )
    body = json.loads(out.getvalue())
    assert body["org"] == "acme" and body["totals"]["conversions"] == 1
    assert {r["key"]: r["conversions"] for r in body["results"]["position_based"]["rows"]} == {"A": 0.5, "B": 0.5}


def test_text_output(acme: Any) -> None:
    insert_events(acme, [imp(-2, "A"), conv(0)])
    out = io.StringIO()
    call_command(
        "attribution",
        "--org",
        "acme",
        "--start",
        DAY.isoformat(),
        "--end",
        DAY.isoformat(),
        "--model",
        "last_touch",
        stdout=out,
    )
    assert "1 attributed conversions" in out.getvalue() and "Last touch: A 1.00" in out.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--org", "nope", "--start", "2026-11-01", "--end", "2026-11-02"], "unknown or inactive organisation"),
        (["--org", "acme", "--start", "2026-11-05", "--end", "2026-11-02"], "--end: end is before start"),
        (["--org", "acme", "--start", "x", "--end", "2026-11-02"], "--start 'x' is not a date"),
        (["--org", "acme", "--start", "2026-11-01", "--end", "2026-11-02", "--model", "magic"], "unknown model"),
        (["--org", "acme", "--start", "2026-11-01", "--end", "2026-11-02", "--lookback-days", "0"], "--lookback-days"),
    ],
)
def test_bad_input_is_one_line(args: list[str], message: str, acme: Any) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("attribution", *args, stdout=io.StringIO())
