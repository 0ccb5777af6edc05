"""Dedupe through the real import agrees with a plain-Python reference on generated files (many
duplicates, case variants, empty keys), for `first` and `last`, in a new audience and appended."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django_tenants.utils import schema_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiences import records
from audiences.models import Audience

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

local = st.sampled_from(["ann", "bob", "cy", "dee", "eve"])
email = st.one_of(
    st.just(""), st.builds(lambda name, upper: (name.upper() if upper else name) + "@x.com", local, st.booleans())
)
rows = st.lists(st.tuples(email, st.integers(min_value=0, max_value=99)), min_size=1, max_size=25)


def reference(lines: list[tuple[int, str, int]], rule: str) -> dict[str, int]:
    """key -> the winning row's value; rows without a key each stand alone (keyed by their line)."""
    winners: dict[str, int] = {}
    for line, address, value in lines:
        key = address.lower() or f"line:{line}"
        if rule == "last" or key not in winners:
            winners[key] = value
    return winners


def run_file(path: Path, name: str, rule: str) -> dict[str, Any]:
    out = io.StringIO()
    call_command("import_audience", "--org", "acme", str(path), "--name", name, "--dedupe", rule, "--json", stdout=out)
    return json.loads(out.getvalue())


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(first=rows, second=rows, rule=st.sampled_from(["first", "last"]))
def test_dedupe_matches_the_reference(
    tmp_path: Path, first: list[tuple[str, int]], second: list[tuple[str, int]], rule: str
) -> None:
    name = f"property {rule} {len(first)}-{len(second)}-{hash((tuple(first), tuple(second))) & 0xFFFF}"
    all_lines: list[tuple[int, str, int]] = []
    for index, batch in enumerate((first, second)):
        path = tmp_path / f"{name}-{index}.csv"
        path.write_text("Email,Score,Batch\n" + "".join(f"{address},{value},{index}\n" for address, value in batch))
        numbered = [(2 + i + 1000 * index, address, value) for i, (address, value) in enumerate(batch)]
        before = len(all_lines)
        all_lines += numbered
        result = run_file(path, name, rule)
        assert result["rows_read"] == len(batch)
        assert result["rows_read"] == result["rows_loaded"] + result["rows_quarantined"] + result["duplicates"]
        with schema_context("org_acme"):
            audience = Audience.objects.get(name=name)
            loaded = records.read_version(
                audience.current_version_id, ["line", "email_normalized", "custom"]
            ).to_dicts()
        expected = reference(all_lines, rule)
        # Rows without an email never collide; compare them as a multiset of values, the keyed ones exactly.
        got = {
            (row["email_normalized"] or f"row:{i}"): json.loads(row["custom"])["score"] for i, row in enumerate(loaded)
        }
        assert sorted(got.values()) == sorted(expected.values()), (rule, before)
        keyed = {k: v for k, v in expected.items() if not k.startswith("line:")}
        assert {k: v for k, v in got.items() if not k.startswith("row:")} == keyed
