"""`ingest bombora FILE`: layouts, week, validation and quarantine, duplicates, replacement, history."""

from __future__ import annotations

import datetime as dt
import gzip

import pytest

from bombora import store
from bombora.models import BomboraTopic, BomboraWeek
from ingestion.models import IngestionRun, QuarantinedRow
from p360.core.jobs.models import Job
from tests.ingestion.bombora_helpers import (
    WEEK,
    adat_line,
    domain_rows,
    partitions,
    scores,
    staging_tables,
    surge_file,
    surge_line,
    write,
)
from tests.ingestion.helpers import ingest, ingest_failing

pytestmark = pytest.mark.django_db


def test_master_surge_gzip_loads_the_week(tmp_path):
    path = surge_file(
        tmp_path,
        [("acme.com", "Cloud Security", 72), ("acme.com", "Data Warehousing", 40), ("globex.io", "Cloud Security", 60)],
    )
    result = ingest("bombora", str(path))
    assert result["status"] == "succeeded"
    assert (result["rows_read"], result["rows_loaded"], result["rows_quarantined"], result["duplicates"]) == (
        3,
        3,
        0,
        0,
    )
    assert result["dates"] == ["2026-11-16"] and result["org"] is None
    assert scores() == [
        ("acme.com", "Cloud Security", 72),
        ("acme.com", "Data Warehousing", 40),
        ("globex.io", "Cloud Security", 60),
    ]
    week = BomboraWeek.objects.get(week=WEEK)
    assert (week.status, week.rows, week.domains, week.topics, week.surging_rows) == ("ready", 3, 2, 2, 2)
    assert week.run_id == result["run_id"] and week.file_name == path.name
    assert store.current_week() == WEEK
    topic = BomboraTopic.objects.get(name="Cloud Security")
    assert (topic.category, topic.first_seen_week, topic.last_seen_week) == ("Tech", WEEK, WEEK)
    assert store.partition_name(WEEK) in partitions() and staging_tables() == []
    assert domain_rows() == [("acme.com", 2, 1, 72), ("globex.io", 1, 1, 60)]
    job = Job.objects.get(pk=IngestionRun.objects.get(pk=result["run_id"]).job_id)
    assert job.kind == "ingestion.run_global" and job.org is None and job.status == "succeeded"
    frame = store.scores_frame(WEEK, [topic.pk])
    assert sorted(frame["domain"].to_list()) == ["acme.com", "globex.io"]


def test_adat_plain_with_date_flag_and_metro_duplicates(tmp_path):
    lines = [
        adat_line("acme.com", "CRM", 66, "greater boston area"),
        adat_line("acme.com", "CRM", 66, "new york"),
        adat_line("beta.org", "CRM", 30),
    ]
    path = write(tmp_path / "adat.csv", lines)
    result = ingest("bombora", str(path), "--date", "2026-11-18")
    assert (result["rows_read"], result["rows_loaded"], result["duplicates"]) == (3, 2, 1)
    assert scores() == [("acme.com", "CRM", 66), ("beta.org", "CRM", 30)]


def test_csv_with_header_and_week_column(tmp_path):
    path = write(
        tmp_path / "intent.csv",
        [
            "Domain,Company Name,Topic,Composite Score,Week",
            "https://www.Acme.com/about,Acme,Cloud Security,70,2026-11-17",
            '"beta.org","Beta, Inc.",Marketing Automation,55,2026-11-16',
            "gamma.net,Gamma,CRM,80,2026-11-09",
        ],
    )
    result = ingest("bombora", str(path))
    assert (result["rows_read"], result["rows_loaded"], result["rows_quarantined"]) == (3, 2, 1)
    assert scores() == [("acme.com", "Cloud Security", 70), ("beta.org", "Marketing Automation", 55)]
    bad = QuarantinedRow.objects.get(run_id=result["run_id"])
    assert bad.line_no == 4 and "week 2026-11-09 is not the file's week (2026-11-16)" in bad.reason


def test_bad_rows_are_quarantined_with_line_and_reason(tmp_path):
    lines = [
        surge_line("ok.com", "CRM", 61),
        surge_line("minus.com", "CRM", -1),
        surge_line("over.com", "CRM", 101),
        surge_line("abc.com", "CRM", "abc"),
        surge_line("half.com", "CRM", "55.5"),
        surge_line("", "CRM", 50),
        surge_line("nodot", "CRM", 50),
        surge_line("empty-topic.com", "", 50),
        "Acme,short.com,CRM,50",
        surge_line("WWW.Mixed.COM", "crm", 70),
        surge_line("http://www.scheme.io/path?x=1", "CRM", 10),
    ]
    path = write(tmp_path / "MasterSurge_20261116.csv", lines)
    result = ingest("bombora", str(path))
    assert (result["rows_read"], result["rows_loaded"], result["rows_quarantined"]) == (11, 3, 8)
    assert result["rows_read"] == result["rows_loaded"] + result["rows_quarantined"] + result["duplicates"]
    reasons = dict(QuarantinedRow.objects.filter(run_id=result["run_id"]).values_list("line_no", "reason"))
    assert reasons == {
        2: "composite score '-1' is not a whole number from 0 to 100",
        3: "composite score '101' is not a whole number from 0 to 100",
        4: "composite score 'abc' is not a whole number from 0 to 100",
        5: "composite score '55.5' is not a whole number from 0 to 100",
        6: "domain is empty",
        7: "domain 'nodot' is not a domain name",
        8: "topic is empty",
        9: "expected 9 fields, found 4",
    }
    # Topic names match case-insensitively: "crm" is the topic "CRM".
    assert scores() == [("mixed.com", "CRM", 70), ("ok.com", "CRM", 61), ("scheme.io", "CRM", 10)]


def test_domains_normalise_exactly_like_audience_records(tmp_path):
    from audiences.normalize import normalize_domain

    raw = ["HTTPS://WWW.Example.COM:443/x", "jane@corp.io", "shop.example.co.uk.", "www.a-b.de"]
    path = surge_file(tmp_path, [(d, "CRM", 50) for d in raw])
    ingest("bombora", str(path))
    assert sorted(d for d, _, _ in scores()) == sorted(normalize_domain(d) for d in raw)


def test_reingesting_a_week_replaces_it(tmp_path):
    first = surge_file(tmp_path, [("a.com", "CRM", 70), ("b.com", "CRM", 20)])
    ingest("bombora", str(first))
    second = surge_file(
        tmp_path, [("a.com", "CRM", 75), ("c.com", "CRM", 90)], name="Output_MasterSurgeFile_20261120.csv"
    )
    result = ingest("bombora", str(second))
    assert scores() == [("a.com", "CRM", 75), ("c.com", "CRM", 90)]
    assert BomboraWeek.objects.count() == 1 and BomboraWeek.objects.get().run_id == result["run_id"]
    assert partitions() == [store.partition_name(WEEK)]


def test_history_keeps_the_newest_weeks(tmp_path, settings):
    settings.P360_BOMBORA_HISTORY_WEEKS = 2
    for day in ("20261102", "20261109", "20261116"):
        ingest("bombora", str(surge_file(tmp_path, [("a.com", "CRM", 70)], name=f"surge_{day}.csv")))
    weeks = dict(BomboraWeek.objects.values_list("week", "status"))
    assert weeks == {dt.date(2026, 11, 2): "pruned", dt.date(2026, 11, 9): "ready", WEEK: "ready"}
    assert partitions() == [store.partition_name(dt.date(2026, 11, 9)), store.partition_name(WEEK)]
    assert partitions("ingestion_bombora_domain") == [
        store.domain_partition_name(dt.date(2026, 11, 9)),
        store.domain_partition_name(WEEK),
    ]
    message, _ = ingest_failing("bombora", str(surge_file(tmp_path, [("a.com", "CRM", 1)], name="s_20261026.csv")))
    assert "older than the 2 weeks kept" in message


def test_unsorted_file_merges_duplicates_across_blocks(tmp_path, settings):
    settings.P360_BOMBORA_CHUNK_MB = 1
    rows = [(f"d{i % 5000:05d}.com", f"Topic {i % 7}", i % 101) for i in range(30_000)]
    result = ingest("bombora", str(surge_file(tmp_path, rows)))
    expected: dict[tuple[str, str], int] = {}
    for d, t, s in rows:
        expected[(d, t)] = max(expected.get((d, t), -1), s)
    assert result["rows_loaded"] == len(expected) and result["duplicates"] == len(rows) - len(expected)
    assert BomboraWeek.objects.get().domains == 5000
    got = {(d, t): s for d, t, s in scores()}
    assert got == expected
    summary = {d: (n, surging, top) for d, n, surging, top in domain_rows()}
    assert len(summary) == 5000 and summary["d00000.com"] == (
        len([k for k in expected if k[0] == "d00000.com"]),
        len([k for k, v in expected.items() if k[0] == "d00000.com" and v >= 60]),
        max(v for k, v in expected.items() if k[0] == "d00000.com"),
    )


def test_sorted_file_over_many_blocks(tmp_path, settings):
    settings.P360_BOMBORA_CHUNK_MB = 1
    rows = [(f"d{i // 9:06d}.com", f"Topic {i % 9}", i % 101) for i in range(40_000)]
    rows += [rows[-1]]  # a duplicate at the very end
    result = ingest("bombora", str(surge_file(tmp_path, rows)))
    assert (result["rows_loaded"], result["duplicates"]) == (40_000, 1)
    week = BomboraWeek.objects.get()
    assert week.domains == len({d for d, _, _ in rows}) and week.surging_rows == sum(1 for r in rows[:-1] if r[2] >= 60)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty"),
        (b"\n\n", "is empty"),
        (b"<!DOCTYPE html><html><body>Not found</body></html>\n", "not a Bombora file"),
        (b"a,b,c,d,e\n", "unknown layout (first line has 5 fields"),
        (b"a,b,c,d,e,f,notascore,h,i\n", "unknown layout"),
        (b"Domain,Company Name,Score\nacme.com,Acme,50\n", "the header lacks Topic"),
    ],
)
def test_unusable_files_fail_clearly(tmp_path, content, expected):
    path = tmp_path / "surge_20261116.csv"
    path.write_bytes(content)
    message, result = ingest_failing("bombora", str(path))
    assert expected in message and result is not None and result["status"] == "failed"
    assert not BomboraWeek.objects.exists() and staging_tables() == []


def test_truncated_gzip_loads_nothing(tmp_path, settings):
    settings.P360_BOMBORA_CHUNK_MB = 1
    ingest("bombora", str(surge_file(tmp_path, [("keep.com", "CRM", 70)])))
    rows = [(f"d{i:06d}.com", "CRM", 70) for i in range(60_000)]
    data = gzip.compress("".join(surge_line(*r) + "\n" for r in rows).encode())
    path = tmp_path / "Output_MasterSurgeFile_20261117.csv.gz"
    path.write_bytes(data[: len(data) * 3 // 4])
    message, _ = ingest_failing("bombora", str(path))
    assert "truncated or corrupt" in message and "nothing was loaded" in message
    assert scores() == [("keep.com", "CRM", 70)] and staging_tables() == []


def test_no_week_anywhere_is_refused(tmp_path):
    path = write(tmp_path / "surge.csv", [surge_line("a.com", "CRM", 50)])
    message, _ = ingest_failing("bombora", str(path))
    assert "no week" in message and "--date" in message


def test_all_rows_bad_fails_and_keeps_the_quarantine(tmp_path):
    path = write(tmp_path / "surge_20261116.csv", [surge_line("a.com", "CRM", 500), surge_line("b.com", "CRM", "x")])
    message, result = ingest_failing("bombora", str(path))
    assert "no row of surge_20261116.csv could be loaded (2 quarantined)" in message
    assert QuarantinedRow.objects.filter(run_id=result["run_id"]).count() == 2
    assert not BomboraWeek.objects.exists()


def test_command_refuses_org_and_missing_file(tmp_path, acme):
    path = surge_file(tmp_path, [("a.com", "CRM", 50)])
    assert "global" in ingest_failing("bombora", str(path), "--org", "acme")[0]
    assert "needs a FILE" in ingest_failing("bombora")[0]
    assert "no such file" in ingest_failing("bombora", str(tmp_path / "missing.csv.gz"))[0]
    assert "is not a date" in ingest_failing("bombora", str(path), "--date", "nope")[0]


def test_quoted_fields_crlf_and_blank_lines(tmp_path):
    lines = [
        '"Acme, Inc.",acme.com,51-200,software,Tech,CRM,66,boston[66],United States',
        "",
        surge_line("plain.com", "CRM", 12),
        '"Broken,quoted.com,51-200,software,Tech,CRM,66,boston[66],United States',
        "   ",
    ]
    path = tmp_path / "surge_20261116.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    result = ingest("bombora", str(path))
    assert (result["rows_read"], result["rows_loaded"], result["rows_quarantined"]) == (4, 2, 2)
    assert scores() == [("acme.com", "CRM", 66), ("plain.com", "CRM", 12)]
    reasons = dict(QuarantinedRow.objects.filter(run_id=result["run_id"]).values_list("line_no", "reason"))
    assert set(reasons) == {4, 5} and all(r.startswith("expected 9 fields") for r in reasons.values())


def test_orphan_cleanup_spares_a_load_in_progress():
    import psycopg
    from django.db import connection

    from bombora.staging import LOCK_CLASS, drop_orphan_staging, staging_name

    cfg = connection.settings_dict
    with connection.cursor() as cursor:
        for run_id in (900001, 900002):
            cursor.execute(f"CREATE TABLE public.{staging_name(run_id)} (x int)")
    with psycopg.connect(dbname=cfg["NAME"], user=cfg["USER"], host=cfg["HOST"] or None, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s, %s)", [LOCK_CLASS, 900001])  # a live worker loading run 900001
        drop_orphan_staging()
        assert staging_tables() == [staging_name(900001)]
        # The worker ends. Its session's locks go when its backend exits, which can trail the client's close by
        # a few milliseconds on a busy machine: unlock explicitly so the test is exact.
        other.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_CLASS, 900001])
    drop_orphan_staging()  # that worker is gone now
    assert staging_tables() == []


def test_week_column_block_with_only_other_weeks(tmp_path):
    path = write(
        tmp_path / "intent.csv",
        ["Domain,Company Name,Topic,Composite Score,Week", "a.com,A,CRM,70,2026-11-09"],
    )
    message, _ = ingest_failing("bombora", str(path), "--date", "2026-11-16")
    assert "no row of intent.csv could be loaded (1 quarantined)" in message
    assert not BomboraWeek.objects.exists() and staging_tables() == []


def test_a_control_byte_in_a_line_does_not_cut_it(tmp_path):
    # The fast line split uses \x01 as its separator; a line holding that byte must still be read whole.
    line = surge_line("acme.com", "Cloud Security", 72).replace("United States", "United\x01States")
    assert "\x01" in line
    path = write(tmp_path / "surge_20261119.csv", [line])
    result = ingest("bombora", str(path))
    assert (result["rows_read"], result["rows_loaded"], result["rows_quarantined"]) == (1, 1, 0)


def test_a_week_column_older_than_the_history_is_refused(tmp_path, settings):
    settings.P360_BOMBORA_HISTORY_WEEKS = 2
    for day in ("20261109", "20261116"):
        ingest("bombora", str(surge_file(tmp_path, [("a.com", "CRM", 70)], name=f"surge_{day}.csv")))
    old = write(tmp_path / "old.csv", ["Domain,Company Name,Topic,Composite Score,Week", "a.com,A,CRM,80,2026-10-05"])
    message, _ = ingest_failing("bombora", str(old))
    assert "older than the 2 weeks kept" in message
