"""The `first` rule streams: each batch is deduplicated against the keys taken so far and COPYed at once.

Its key set (sorted runs merged as they grow) agrees with a plain-Python set over many batches, and a file
read in many small batches loads exactly the rows, row ordinals, lines and quarantine a plain-Python
reference expects, in a new audience and appended to one.
"""

from __future__ import annotations

import functools
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import psutil
import pytest
from django.core.management import call_command
from django_tenants.utils import schema_context
from hypothesis import given, settings
from hypothesis import strategies as st

from audiences import import_dedupe, import_source, pipeline, records
from audiences.import_dedupe import KeyHashCollision, SeenKeys
from audiences.import_stage import KEY
from audiences.models import Audience, AudienceImport
from p360.core.intake.reader import DelimitedReader

key = st.one_of(st.none(), st.sampled_from([f"k{i}" for i in range(40)]))


def _weak_hash(keys: pl.Series) -> pl.Series:
    """A hash with many collisions (the key's length), to exercise the exact check."""
    return keys.str.len_bytes().fill_null(0).cast(pl.UInt64)


def _replay(existing: list[str], batches: list[list[str | None]]) -> None:
    """SeenKeys against a plain-Python set: the same rows kept, or a collision reported (never a wrong answer)."""
    with tempfile.TemporaryDirectory() as spill:
        seen = SeenKeys(pl.DataFrame({KEY: existing}, schema={KEY: pl.String}), Path(spill))
        taken = set(existing)
        agreed = True
        for batch in batches:
            expected = []
            for value in batch:
                expected.append(value is None or value not in taken)
                if value is not None:
                    taken.add(value)
            got = seen.first_new(pl.Series(KEY, batch, dtype=pl.String)).to_list()
            agreed = agreed and got == expected
        assert all(bool(np.all(run[:-1] <= run[1:])) for run in seen.runs)
        if agreed:
            seen.verify()
        else:
            with pytest.raises(KeyHashCollision):
                seen.verify()


@settings(max_examples=60, deadline=None)
@given(
    existing=st.lists(st.sampled_from([f"k{i}" for i in range(40)]), max_size=10),
    batches=st.lists(st.lists(key, max_size=12), max_size=12),
)
def test_seen_keys_agree_with_a_set(existing: list[str], batches: list[list[str | None]]) -> None:
    _replay(existing, batches)


@settings(max_examples=60, deadline=None)
@given(
    existing=st.lists(st.sampled_from([f"k{i}" for i in range(40)]), max_size=10),
    batches=st.lists(st.lists(key, max_size=12), max_size=12),
)
def test_seen_keys_with_colliding_hashes_never_answer_wrong(
    existing: list[str], batches: list[list[str | None]]
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(import_dedupe, "key_hashes", _weak_hash)
        _replay(existing, batches)


def test_seen_keys_grow_their_slot_table_and_stay_exact() -> None:
    """Enough keys to rebuild the slot table several times; every repeat is found, every new key is kept."""
    _replay(
        [f"old{i}" for i in range(0, 30_000, 7)],
        [[f"k{(b * 9_000 + i) % 70_000}" if i % 5 else f"old{i}" for i in range(12_000)] for b in range(12)],
    )


def _import(path: Path, name: str, mode: str) -> dict[str, Any]:
    out = io.StringIO()
    call_command("import_audience", "--org", "acme", str(path), "--name", name, "--mode", mode, "--json", stdout=out)
    return json.loads(out.getvalue())


@pytest.mark.django_db
@pytest.mark.parametrize("colliding", [False, True], ids=["hashes", "colliding-hashes"])
def test_a_file_read_in_small_batches_loads_exactly_the_first_of_each_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, colliding: bool
) -> None:
    monkeypatch.setattr(import_source, "DelimitedReader", functools.partial(DelimitedReader, chunk_size=3))
    if colliding:  # every key of one length shares a hash: the stream gives up and the staged path is exact
        monkeypatch.setattr(import_dedupe, "key_hashes", _weak_hash)
    staged_runs: list[str] = []
    real_stage = pipeline.stage

    def counting_stage(imp: AudienceImport, *args: Any) -> Any:
        staged_runs.append(imp.source_name)
        return real_stage(imp, *args)

    monkeypatch.setattr(pipeline, "stage", counting_stage)
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
    # the stream gave up on the colliding hashes only (a@x.com and b@x.com share one in the first file)
    assert staged_runs == (["people-0.csv", "people-1.csv"] if colliding else [])


def test_the_peak_inside_a_phase_is_recorded_though_it_is_gone_by_its_end() -> None:
    # The end-of-phase RSS missed the 10M import's peak; the high-water mark names the phase that raised it.
    from audiences.import_stage import Staged, peak_rss_mb

    staged = Staged()
    with staged.phase("warm"):
        pass
    rss = psutil.Process().memory_info().rss // (1 << 20)
    with staged.phase("spike"):
        block = np.ones((peak_rss_mb() - rss + 300) << 20, dtype=np.uint8)  # touched: 300 MB over the old mark
        del block
    with staged.phase("calm"):
        pass
    assert staged.peak_memory["spike"] >= staged.memory["spike"] + 200
    assert "calm" not in staged.peak_memory and "between" not in staged.peak_memory


@pytest.mark.django_db
def test_an_import_reports_its_peak_memory_by_phase(tmp_path: Path) -> None:
    path = tmp_path / "peak.csv"
    path.write_text("Email,Score\n" + "".join(f"p{i}@x.com,{i}\n" for i in range(200)))
    result = _import(path, "Peaks by phase", "replace")
    with schema_context("org_acme"):
        quality = AudienceImport.objects.get(pk=result["import_id"]).quality
    assert result["rows_loaded"] == 200
    assert quality["peak_rss_mb"] and all(mb > 0 for mb in quality["peak_rss_mb"].values())
