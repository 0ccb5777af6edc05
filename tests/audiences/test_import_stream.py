"""The `first` rule streams: each batch is deduplicated against the keys taken so far and COPYed at once.

Its key set (sorted runs merged as they grow) agrees with a plain-Python set over many batches, and a file
read in many small batches loads exactly the rows, row ordinals, lines and quarantine a plain-Python
reference expects, in a new audience and appended to one.
"""

from __future__ import annotations

import functools
import io
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from django.core.management import call_command
from django_tenants.utils import schema_context
from hypothesis import given, settings
from hypothesis import strategies as st

from audiences import import_source, records
from audiences.import_dedupe import SeenKeys
from audiences.import_stage import KEY
from audiences.models import Audience, AudienceImport
from p360.core.intake.reader import DelimitedReader

key = st.one_of(st.none(), st.sampled_from([f"k{i}" for i in range(40)]))


@settings(max_examples=60, deadline=None)
@given(
    existing=st.lists(st.sampled_from([f"k{i}" for i in range(40)]), max_size=10),
    batches=st.lists(st.lists(key, max_size=12), max_size=12),
)
def test_seen_keys_agree_with_a_set(existing: list[str], batches: list[list[str | None]]) -> None:
    seen = SeenKeys(pl.DataFrame({KEY: existing}, schema={KEY: pl.String}))
    taken = set(existing)
    for batch in batches:
        expected = []
        for value in batch:
            expected.append(value is None or value not in taken)
            if value is not None:
                taken.add(value)
        assert seen.first_new(pl.Series(KEY, batch, dtype=pl.String)).to_list() == expected
    assert all(run.is_sorted() for run in seen.runs)
    assert sum(run.len() for run in seen.runs) == len(taken)  # each taken key once


def _import(path: Path, name: str, mode: str) -> dict[str, Any]:
    out = io.StringIO()
    call_command("import_audience", "--org", "acme", str(path), "--name", name, "--mode", mode, "--json", stdout=out)
    return json.loads(out.getvalue())


@pytest.mark.django_db
def test_a_file_read_in_small_batches_loads_exactly_the_first_of_each_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(import_source, "DelimitedReader", functools.partial(DelimitedReader, chunk_size=3))
    first = ["a@x.com", "B@x.com", "", "a@x.com", "c@x.com", "not-an-email", "b@X.com", "", "d@x.com", "c@x.com"]
    second = ["e@x.com", "A@x.com", "e@x.com", "", "f@x.com", "d@x.com", "g@x.com"]
    name = "Streamed in small batches"
    taken: set[str] = set()
    expected: list[tuple[int, int, str | None, int]] = []  # (row, line, email, score)
    for index, (mode, emails) in enumerate((("replace", first), ("append", second))):
        path = tmp_path / f"people-{index}.csv"
        path.write_text("Email,Score\n" + "".join(f"{email},{score}\n" for score, email in enumerate(emails)))
        result = _import(path, name, mode)
        loaded = 0
        for score, email in enumerate(emails):
            if email == "not-an-email":
                continue
            normal = email.lower() or None
            if normal is None or normal not in taken:
                expected.append((len(expected), score + 2, normal, score))
                loaded += 1
            if normal is not None:
                taken.add(normal)
        quarantined = emails.count("not-an-email")
        assert (result["rows_loaded"], result["rows_quarantined"]) == (loaded, quarantined)
        assert result["duplicates"] == len(emails) - loaded - quarantined
        with schema_context("org_acme"):
            audience = Audience.objects.get(name=name)
            assert audience.current_version_id is not None
            rows = records.read_version(audience.current_version_id, ["row", "line", "email_normalized", "custom"])
            imp = AudienceImport.objects.get(pk=result["import_id"])
            assert audience.record_count == len(expected)
            assert imp.quality["records_in_version"] == len(expected)
        got = [(r["row"], r["line"], r["email_normalized"], json.loads(r["custom"])["score"]) for r in rows.to_dicts()]
        assert got == expected
