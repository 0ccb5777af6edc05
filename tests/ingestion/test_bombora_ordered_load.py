"""Issue 17 (Bombora load speed): the week is COPYed sorted by (topic_id, domain), blocks without quotes are read
in one pass (`_fields_direct`), and gzip may be inflated by ISA-L. Each must leave the results exactly as before."""

from __future__ import annotations

import gzip
import json
import random

import polars as pl
import pytest
from django.db import connection

from bombora import parsing, reading, staging
from bombora.layout import ADAT, MASTER_SURGE
from bombora.staging import WeekRows
from ingestion.models import QuarantinedRow
from tests.cli import run_manage
from tests.ingestion.bombora_helpers import WEEK, adat_line, scores, staging_tables, surge_file, surge_line
from tests.ingestion.helpers import ingest, ingest_failing
from tests.ingestion.test_bombora_faults import (  # the committed-data helpers of the subprocess tests
    _autocommit,
    committed_cleanup,  # noqa: F401 - a fixture
    week_scores,
)


def _heap_order(week=WEEK) -> list[tuple[int, str]]:
    """(topic_id, domain) of the week's partition in physical (ctid) order."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT topic_id, domain FROM public.ingestion_bombora_score WHERE week = %s ORDER BY ctid", [week]
        )
        return [tuple(row) for row in cursor.fetchall()]


@pytest.mark.django_db
def test_a_sorted_file_lands_in_index_order_with_exact_results(tmp_path, settings):
    settings.P360_BOMBORA_CHUNK_MB = 1  # many blocks: the held rows come from several batches
    rng = random.Random(17)
    rows = []
    for d in range(6000):
        for t in rng.sample(range(40), rng.randint(1, 8)):
            rows.append((f"d{d:05d}.example.com", f"Topic {t:02d}", rng.randint(0, 100)))
    rows += [(*rows[-1][:2], rows[-1][2] // 2)]  # a duplicate with a lower score, at the very end
    result = ingest("bombora", str(surge_file(tmp_path, rows)))
    expected: dict[tuple[str, str], int] = {}
    for d, t, s in rows:
        expected[(d, t)] = max(expected.get((d, t), -1), s)
    assert (result["rows_loaded"], result["duplicates"]) == (len(expected), 1)
    assert scores() == sorted((d, t, s) for (d, t), s in expected.items())
    heap = _heap_order()
    assert heap == sorted(heap)  # the (topic_id, domain) index was built over presorted keys
    assert staging_tables() == []


@pytest.mark.django_db
def test_an_unsorted_file_still_merges_in_sql(tmp_path, settings):
    settings.P360_BOMBORA_CHUNK_MB = 1
    rows = [(f"d{(i * 7919) % 5000:05d}.com", f"Topic {i % 7}", i % 101) for i in range(30_000)]
    result = ingest("bombora", str(surge_file(tmp_path, rows)))
    expected: dict[tuple[str, str], int] = {}
    for d, t, s in rows:
        expected[(d, t)] = max(expected.get((d, t), -1), s)
    assert result["rows_loaded"] == len(expected) and result["duplicates"] == len(rows) - len(expected)
    assert {(d, t): s for d, t, s in scores()} == expected


def test_week_rows_sort_by_topic_then_domain_and_give_every_row_back():
    held = WeekRows()
    batches = [
        pl.DataFrame({"domain": ["a.com", "a.com", "b.com"], "topic_id": [3, 1, 2], "score": [1, 2, 3]}),
        # not in domain order inside the batch (ranked), still after the first batch's domains
        pl.DataFrame({"domain": ["d.com", "c.com", "d.com"], "topic_id": [1, 1, 3], "score": [4, 5, 6]}),
    ]
    for batch in batches:
        held.add(batch.with_columns(pl.col("topic_id").cast(pl.Int32), pl.col("score").cast(pl.UInt8)))
    assert held.held and held.count == 4
    parts = list(held.chunks(size=2))
    assert [p.height for p in parts] == [2, 2, 2] and not held.held
    got = pl.concat(parts)
    assert got.columns == ["domain", "topic_id", "score"]
    assert got.rows() == [
        ("a.com", 1, 2),
        ("c.com", 1, 5),
        ("d.com", 1, 4),
        ("b.com", 2, 3),
        ("a.com", 3, 1),
        ("d.com", 3, 6),
    ]
    for batch in batches:
        held.add(batch.with_columns(pl.col("topic_id").cast(pl.Int32), pl.col("score").cast(pl.UInt8)))
    unordered = pl.concat(list(held.chunks(ordered=False)))
    assert sorted(unordered.rows()) == sorted(got.rows())


@pytest.mark.parametrize("topic_base", [0, 70_000])  # ids below 2**16: the radix sort; above: the general sort
@pytest.mark.parametrize("shuffled", [False, True])  # batches in domain order, or ranked within a batch
def test_week_rows_numpy_hold_equals_a_polars_sort_with_nulls_and_growth(topic_base, shuffled, monkeypatch):
    """Held in numpy arrays (grown by doubling) the rows come back exactly as polars sorts them, nulls kept."""
    monkeypatch.setattr("bombora.staging.HELD_START_ROWS", 7)  # several doublings
    rng = random.Random(topic_base + shuffled)
    held, batches, first = WeekRows(), [], 0
    for _ in range(6):
        domains = [f"d{first + i:05d}.com" for i in range(rng.randint(1, 9))]
        first += len(domains)
        pairs = [(d, t) for d in domains for t in rng.sample(range(20), rng.randint(1, 5))]
        if shuffled:
            rng.shuffle(pairs)
        batch = pl.DataFrame(
            {
                "domain": [d for d, _ in pairs],
                "topic_id": pl.Series([topic_base + t for _, t in pairs], dtype=pl.Int32),
                "score": pl.Series([rng.randint(0, 100) for _ in pairs], dtype=pl.UInt8),
                # nulls only from the third batch on: the validity starts late
                "volume": pl.Series(
                    [None if len(batches) > 2 and rng.random() < 0.3 else rng.randint(0, 9) for _ in pairs],
                    dtype=pl.Int32,
                ),
                "surging": pl.Series([rng.choice([True, False, None]) for _ in pairs], dtype=pl.Boolean),
            }
        )
        batches.append(batch)
        held.add(batch)
    every = pl.concat(batches)
    parts = list(held.chunks(size=5))
    assert not held.held and all(p.height <= 5 for p in parts)
    got = pl.concat(parts)
    assert got.schema == every.schema
    assert got.equals(every.sort("topic_id", "domain"))
    for batch in batches:
        held.add(batch)
    assert pl.concat(list(held.chunks(ordered=False, size=4))).equals(every)


def test_week_rows_copy_domain_texts_out_of_sliced_batches():
    """The domain texts are copied out of the batch (a slice of a bigger frame, non-ASCII text included)."""
    whole = pl.DataFrame(
        {
            "domain": ["a.com", "b.com", "exämple.de", "exämple.de", "z" * 40 + ".com"],
            "topic_id": pl.Series([1, 2, 2, 1, 1], dtype=pl.Int32),
            "score": pl.Series([1, 2, 3, 4, 5], dtype=pl.UInt8),
        }
    )
    held = WeekRows()
    held.add(whole.slice(1, 3))
    held.add(whole.slice(4, 1))
    assert pl.concat(list(held.chunks())).equals(whole.slice(1, 4).sort("topic_id", "domain"))


def _random_lines(rng: random.Random, layout_line, n: int) -> list[str]:
    lines = []
    for i in range(n):
        kind = rng.random()
        line = layout_line(f"d{i // 3:05d}.com", f"Topic {i % 5}", rng.randint(0, 100))
        if kind < 0.03:
            line += ",extra"  # a field too many
        elif kind < 0.06:
            line = line.rsplit(",", 1)[0]  # a field too few
        elif kind < 0.08:
            line = line.replace(",", "", 1) + ","  # the right count, values shifted
        elif kind < 0.10:
            line = ""  # blank: skipped, not a row
        elif kind < 0.11:
            line = "   "
        elif kind < 0.14:
            line = line.replace(f",{line.split(',')[6]},", ",abc,", 1)  # a bad score
        elif kind < 0.16:
            line = line.replace(".com", ".com:8080/path", 1)  # normalised
        elif kind < 0.17:
            line = line.replace("d", "not a domain ", 1)
        lines.append(line)
    return lines


@pytest.mark.parametrize("layout", [MASTER_SURGE, ADAT])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_one_pass_read_equals_the_general_path(monkeypatch, layout, seed):
    rng = random.Random(seed)
    make = surge_line if layout is MASTER_SURGE else adat_line
    for dirty in (False, True):
        lines = _random_lines(rng, make, 3000) if dirty else [make(f"d{i:05d}.com", "CRM", i % 101) for i in range(900)]
        data = "".join(line + "\n" for line in lines).encode()
        if rng.random() < 0.5:
            data = data.rstrip(b"\n")  # the last block of a file may lack its final newline
        if not dirty:  # a clean block takes the one-pass read
            assert parsing._fields_direct(data, 5, layout) is not None
        fast_block, fast_lines = parsing.parse_block(data, 5, layout, None)
        monkeypatch.setattr(parsing, "_fields_direct", lambda *a: None)
        slow_block, slow_lines = parsing.parse_block(data, 5, layout, None)
        monkeypatch.undo()
        assert fast_lines == slow_lines
        assert fast_block.good.equals(slow_block.good)
        assert fast_block.bad == slow_block.bad


def test_a_field_too_many_and_one_too_few_are_caught_though_the_commas_add_up():
    lines = [surge_line(f"d{i}.com", "CRM", 50) for i in range(4)]
    lines[1] += ",extra"
    lines[2] = lines[2].rsplit(",", 1)[0]
    data = "".join(line + "\n" for line in lines).encode()
    assert data.count(b",") == 8 * len(lines)
    assert parsing._fields_direct(data, 1, MASTER_SURGE) is None  # the reader refuses the longer line
    block, _ = parsing.parse_block(data, 1, MASTER_SURGE, None)
    assert block.good.height == 2
    assert [(line, reason) for line, reason, _ in block.bad] == [
        (2, "expected 9 fields, found 10"),
        (3, "expected 9 fields, found 8"),
    ]


def test_a_block_with_bad_rows_keeps_their_text():
    lines = [surge_line(f"d{i}.com", "CRM", 50) for i in range(5)]
    lines[3] = surge_line("d3.com", "CRM", 500)  # bad score, field count right: the one-pass read is taken
    data = "".join(line + "\n" for line in lines).encode()
    assert parsing._fields_direct(data, 1, MASTER_SURGE) is not None
    block, n = parsing.parse_block(data, 1, MASTER_SURGE, None)
    assert n == 5 and block.good.height == 4
    assert block.bad == [(4, "composite score '500' is not a whole number from 0 to 100", lines[3])]


@pytest.mark.django_db
def test_quarantine_is_exact_through_the_one_pass_read(tmp_path):
    lines = [surge_line(f"d{i:03d}.com", "CRM", i % 101) for i in range(200)]
    lines[10] = surge_line("d010.com", "CRM", 101)
    lines[20] = surge_line("", "CRM", 5)
    lines[30] = surge_line("d030.com", "", 5)
    path = tmp_path / "Output_MasterSurgeFile_20261119.csv.gz"
    path.write_bytes(gzip.compress("".join(line + "\n" for line in lines).encode()))
    result = ingest("bombora", str(path))
    assert (result["rows_read"], result["rows_loaded"], result["rows_quarantined"]) == (200, 197, 3)
    kept = dict(QuarantinedRow.objects.filter(run_id=result["run_id"]).values_list("line_no", "reason"))
    assert kept == {
        11: "composite score '101' is not a whole number from 0 to 100",
        21: "domain is empty",
        31: "topic is empty",
    }


@pytest.mark.django_db
def test_a_corrupt_gzip_loads_nothing_with_either_inflater(tmp_path, settings, monkeypatch):
    """The stdlib's gzip and ISA-L's (when installed) both end in the same one-line refusal."""
    settings.P360_BOMBORA_CHUNK_MB = 1
    rows = [(f"d{i:06d}.com", "CRM", 70) for i in range(60_000)]
    data = bytearray(gzip.compress("".join(surge_line(*r) + "\n" for r in rows).encode()))
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64  # a damaged middle
    path = tmp_path / "Output_MasterSurgeFile_20261117.csv.gz"
    path.write_bytes(bytes(data))
    inflaters = [reading._gzip_module()]
    if reading.GZIP is not gzip:
        inflaters.append((gzip, (EOFError, OSError, __import__("zlib").error)))
    for module, errors in inflaters:
        monkeypatch.setattr(reading, "GZIP", module)
        monkeypatch.setattr(reading, "GZIP_ERRORS", errors)
        message, _ = ingest_failing("bombora", str(path))
        assert "truncated or corrupt" in message and "nothing was loaded" in message
        assert scores() == [] and staging_tables() == []


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 20])
def test_blocks_are_whole_lines_and_give_back_every_byte(block):
    import io

    text = b"".join(b"line %d %s\n" % (i, b"x" * (i % 37)) for i in range(500)) + b"last line without newline"
    blocks = list(reading.read_blocks(io.BytesIO(text), block))
    assert b"".join(blocks) == text
    assert all(b.endswith(b"\n") for b in blocks[:-1]) and all(b.count(b"\n") >= 1 for b in blocks[:-1])
    gz = list(reading.read_blocks(reading.GZIP.GzipFile(fileobj=io.BytesIO(gzip.compress(text)), mode="rb"), block))
    assert gz == blocks


@pytest.mark.django_db
@pytest.mark.slow
@pytest.mark.usefixtures("committed_cleanup")
def test_outside_a_transaction_the_week_is_copied_frozen_in_index_order(tmp_path):
    """The real path (a command, not a test transaction): the copy connection's TRUNCATE + COPY FREEZE transaction
    over several blocks, committed."""
    rows = [(f"d{d:05d}.com", f"Topic {(d * 7 + t) % 30:02d}", (d + t) % 101) for d in range(9000) for t in range(4)]
    path = surge_file(tmp_path, rows, name="Output_MasterSurgeFile_20261116.csv.gz")
    env = {"P360_DB_NAME": connection.settings_dict["NAME"], "P360_BOMBORA_CHUNK_MB": "1"}
    done = run_manage("ingest", "bombora", str(path), "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows_loaded"] == len(rows)
    assert sorted(week_scores()) == sorted((d, s) for d, _t, s in rows)
    with _autocommit() as conn:
        heap = conn.execute(
            "SELECT topic_id, domain FROM public.ingestion_bombora_score WHERE week = %s ORDER BY ctid", [WEEK]
        ).fetchall()
    assert len(heap) == len(rows) and heap == sorted(heap)


# --- Session 8: the projecting one-pass read, and the per-domain work of a sorted batch on its domain runs --------


@pytest.mark.parametrize(
    ("edit", "uniform"),
    [
        (lambda lines: lines, True),
        (lambda lines: [*lines[:-1], lines[-1].rstrip("\n")], True),  # the last line without its newline
        (lambda lines: [lines[0], "\n", *lines[1:]], False),  # a blank line
        (lambda lines: [lines[0].replace("\n", ",x\n"), *lines[1:]], False),  # a field too many (first line)
        (lambda lines: [*lines[:-1], lines[-1].replace("\n", ",x\n")], False),  # a field too many (last line)
        (lambda lines: [lines[0].replace(",", "", 1), *lines[1:]], False),  # a field too few
        # one line a field short and the next a field over: the block's commas still add up
        (lambda lines: [lines[0].replace(",", "", 1), lines[1].replace("\n", ",x\n"), *lines[2:]], False),
    ],
)
def test_uniform_lines_proves_every_line_has_the_layouts_field_count(edit, uniform):
    lines = edit([surge_line(f"d{i}.com", "CRM", 50) + "\n" for i in range(5)])
    data = "".join(lines).encode()
    expected = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    assert parsing._uniform_lines(data, MASTER_SURGE.fields) == (expected if uniform else None)
    direct = parsing._fields_direct(data, 1, MASTER_SURGE)
    assert (direct is not None) == uniform
    if direct is not None:  # only the needed fields, one row per line
        assert direct.height == expected and "domain" in direct.columns and "column_0" not in direct.columns


def test_an_invalid_utf8_byte_takes_the_general_path_with_the_same_replacement():
    lines = [surge_line(f"d{i}.com", "CRM", 50).encode() for i in range(3)]
    lines[1] = lines[1].replace(b"d1.com", b"d\xff1.com")
    data = b"\n".join(lines) + b"\n"
    assert parsing._fields_direct(data, 1, MASTER_SURGE) is None  # strict UTF-8 refuses the block
    block, n = parsing.parse_block(data, 1, MASTER_SURGE, None)
    # as the lossy one-pass read gave it: the byte replaced by U+FFFD, the row then judged by the domain rules
    lossy = pl.read_csv(data, has_header=False, quote_char=None, encoding="utf8-lossy").to_series(1)
    assert n == 3 and block.good["domain"].to_list() == lossy.to_list() == ["d0.com", "d\ufffd1.com", "d2.com"]
    assert block.bad == []


def _batch(pairs: list[tuple[str, int, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "domain": [d for d, _, _ in pairs],
            "topic_id": pl.Series([t for _, t, _ in pairs], dtype=pl.Int32),
            "score": pl.Series([s for _, _, s in pairs], dtype=pl.UInt8),
        }
    )


@pytest.mark.parametrize("seed", range(5))
def test_the_domain_runs_of_a_sorted_batch_give_what_hashing_the_domains_gives(seed):
    """merge_duplicates, domain_summary and WeekRows.add on the runs equal their general (hashing) path."""
    rng = random.Random(seed)
    domains = sorted({f"{rng.choice(['', 'www-', 'a.'])}d{rng.randint(0, 40)}.com" for _ in range(25)})
    pairs = [
        (d, rng.randint(1, 6), rng.choice([0, 59, 60, 100, rng.randint(0, 100)])) for d in domains for _ in range(4)
    ]
    pairs.sort(key=lambda p: p[0])  # stable: the topics stay in file order within a domain, duplicates included
    rows = _batch(pairs)
    starts = staging.domain_runs(rows["domain"])
    assert starts is not None and len(starts) == len(domains)
    merged, duplicates = staging.merge_duplicates(rows, starts)
    expected, expected_duplicates = staging.merge_duplicates(rows)
    assert merged.equals(expected) and duplicates == expected_duplicates
    runs = staging.domain_runs(merged["domain"])
    summary = staging.domain_summary(merged, runs)
    assert summary.cast({c: pl.Int64 for c in summary.columns[1:]}).equals(
        staging.domain_summary(merged).cast({c: pl.Int64 for c in summary.columns[1:]})
    )
    by_runs, by_ranks = WeekRows(), WeekRows()
    by_runs.add(merged, runs)
    by_ranks.add(merged)
    assert pl.concat(list(by_runs.chunks())).equals(pl.concat(list(by_ranks.chunks())))


def test_domain_runs_only_for_a_sorted_batch():
    assert staging.domain_runs(pl.Series(["b.com", "a.com"])) is None
    assert staging.domain_runs(pl.Series([], dtype=pl.String)) is None
    assert staging.domain_runs(pl.Series(["a.com", "a.com", "b.com"])).tolist() == [0, 2]
