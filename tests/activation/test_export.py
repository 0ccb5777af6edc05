"""Device-id files: LiveRamp layout, GAID as AAID, no PII, opt-outs and bad ids skipped, REDS lookback,
< 25 rows refused, splitting and naming, merged vs split, the command, and org isolation."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_tenants.utils import schema_context

from activation.exports import ExportRefused, export_files
from activation.models import Uid2Identity
from tests.activation.conftest import h, person
from tests.activation.helpers import add_reds_events
from tests.audiences.builder_helpers import make_imported

pytestmark = [pytest.mark.slow, pytest.mark.django_db]
NAME_FORBIDDEN = set(" !@#$%[]:{}?*\\")


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def export(tmp_path: Path, *audiences: Any, **kw: Any) -> Any:
    return export_files(audiences=list(audiences), fmt=kw.pop("fmt", "liveramp"), out_dir=tmp_path,
                        org_name="Acme Corporation", lookback_days=kw.pop("lookback_days", 30), **kw)  # fmt: skip


def test_liveramp_device_file_layout_and_rules(acme: Any, tmp_path: Path) -> None:
    rows = [person(i) for i in range(30)]
    rows += [person(100, maid="not-a-maid", ip="999.1.1.1"), person(101, maid="00000000-0000-0000-0000-000000000000",
             ip=None), person(102, maid=None, ip="192.168.7.7")]  # fmt: skip
    rows.append(
        person(
            103, email="optout@example.com", email_normalized="optout@example.com", email_sha256=h("optout@example.com")
        )
    )
    with schema_context(acme.schema_name):
        audience = make_imported("Device people", rows)
        Uid2Identity.objects.create(kind="email", hashed=h("optout@example.com"), status="optout")
        now = timezone.now()
        add_reds_events([
            (now - dt.timedelta(days=2), str(audience.pk), "ABCDEF01-0134-4EEC-B4AF-65855133B008", "MAID"),
            (now - dt.timedelta(days=3), f"p360_{audience.pk}", "abcdef02-0134-4eec-b4af-65855133b008", "MAID"),
            (now - dt.timedelta(days=1), str(audience.pk), "172.16.0.9", "IP"),
            (now - dt.timedelta(days=45), str(audience.pk), "ABCDEF03-0134-4EEC-B4AF-65855133B008", "MAID"),
            (now - dt.timedelta(days=1), "someone-else", "ABCDEF04-0134-4EEC-B4AF-65855133B008", "MAID"),
        ])  # fmt: skip
        result = export(tmp_path, audience)
    (info,) = result.files
    assert info.name.startswith("AcmeCorporation_P360Merged_") and info.name.endswith("_file-part-1.psv")
    assert not (set(info.name) & NAME_FORBIDDEN) and info.name.isascii() and not info.name.startswith((".", "_"))
    content = lines(info.path)
    # Merged: LiveRamp's column layout, one column per segment named by its segment id, `1` for a member.
    assert content[0] == f"advertising_id|id_type|ip_address|timestamp|P360_{audience.pk}_DevicePeople"
    body = [line.split("|") for line in content[1:]]
    assert info.rows == len(body) == result.rows == 30 + 1 + 3  # 30 people, the IP-only one, 3 REDS ids in window
    assert info.sha256 == hashlib.sha256(info.path.read_bytes()).hexdigest()
    types = {r[1] for r in body}
    assert types == {"IDFA", "AAID", ""}  # GAID written as AAID; IP-only rows have no id type
    gaid = person(2)["maid"]
    assert any(r[0] == gaid.lower() and r[1] == "AAID" for r in body)
    assert any(r[0] == "ABCDEF01-0134-4EEC-B4AF-65855133B008" and r[1] == "IDFA" for r in body)
    assert any(r[0] == "abcdef02-0134-4eec-b4af-65855133b008" and r[1] == "AAID" for r in body)
    assert any(r[2] == "172.16.0.9" and r[0] == "" for r in body)
    text = info.path.read_text()
    for forbidden in ("ABCDEF03", "ABCDEF04", "optout", "@", "First", "Last", "+1555", person(103)["maid"]):
        assert forbidden not in text  # outside lookback, other segment, PII, opted-out person
    assert all(r[3].isdigit() for r in body) and {r[4] for r in body} == {"1"} and {len(r) for r in body} == {5}
    assert result.skipped == {"opted_out": 1, "invalid_maid": 2, "invalid_ip": 1, "no_device_id": 2}


def test_fewer_than_25_rows_is_refused_naming_the_count(acme: Any, tmp_path: Path) -> None:
    with schema_context(acme.schema_name):
        audience = make_imported("Tiny", [person(i) for i in range(24)])
        with pytest.raises(ExportRefused, match="has 24 row"):
            export(tmp_path, audience)
    assert list(tmp_path.iterdir()) == []


def test_split_at_row_and_size_limits_and_split_mode(acme: Any, tmp_path: Path) -> None:
    with schema_context(acme.schema_name):
        a = make_imported("Seg A", [person(i) for i in range(60)])
        b = make_imported("Seg B", [person(i) for i in range(200, 230)])
        by_rows = export(tmp_path / "rows", a, max_rows=25)
        by_bytes = export(tmp_path / "bytes", a, max_bytes=2000)
        split = export(tmp_path / "split", a, b, merged=False)
        merged = export(tmp_path / "merged", a, b)
    assert [f.rows for f in by_rows.files] == [25, 25, 10]
    assert [f.name.rsplit("-", 1)[1] for f in by_rows.files] == ["1.psv", "2.psv", "3.psv"]
    assert all(f.bytes <= 2000 for f in by_bytes.files) and sum(f.rows for f in by_bytes.files) == 60
    for f in by_rows.files + by_bytes.files:
        assert lines(f.path)[0].startswith("advertising_id|id_type")  # a header in every part
    assert len(split.files) == 2 and {f.rows for f in split.files} == {60, 30}
    assert "SegA-" in split.files[0].name and "SegB-" in split.files[1].name
    for f, audience in zip(split.files, (a, b), strict=True):  # split mode keeps the `segment_id` column
        assert lines(f.path)[0] == "advertising_id|id_type|ip_address|timestamp|segment_id"
        assert {line.split("|")[4] for line in lines(f.path)[1:]} == {f"P360_{audience.pk}_Seg{audience.name[-1]}"}
    assert len(merged.files) == 1 and merged.rows == 90
    header = lines(merged.files[0].path)[0]
    assert header == f"advertising_id|id_type|ip_address|timestamp|P360_{a.pk}_SegA|P360_{b.pk}_SegB"


def test_export_audience_command(acme: Any, globex: Any, tmp_path: Path) -> None:
    with schema_context(acme.schema_name):
        audience = make_imported("Cmd", [person(i) for i in range(26)])
    out = StringIO()
    call_command("export_audience", "--org", "acme", str(audience.pk), "--format", "liveramp", "--out",
                 str(tmp_path), "--json", stdout=out)  # fmt: skip
    data = json.loads(out.getvalue())
    assert data["rows"] == 26 and set(data) >= {"rows", "files", "skipped"}
    assert set(data["files"][0]) >= {"name", "rows", "sha256"}
    with pytest.raises(CommandError, match=f"unknown audience {audience.pk} in organisation globex"):
        call_command("export_audience", "--org", "globex", str(audience.pk), "--format", "liveramp", "--out",
                     str(tmp_path / "g"), stdout=StringIO())  # fmt: skip


def test_same_maid_in_two_orgs_never_crosses(acme: Any, globex: Any, tmp_path: Path) -> None:
    shared = "DEADBEEF-0134-4EEC-B4AF-65855133B008"
    with schema_context(acme.schema_name):
        a = make_imported("Shared", [person(i) for i in range(25)] + [person(500, maid=shared, maid_type="IDFA")])
        acme_out = export(tmp_path / "acme", a)
    with schema_context(globex.schema_name):
        g = make_imported("Shared", [person(i, maid=f"{i:08X}-0000-4000-8000-000000000001", maid_type="IDFA")
                                     for i in range(1000, 1030)] + [person(501, maid=shared, maid_type="IDFA")])  # fmt: skip
        globex_out = export(tmp_path / "globex", g)
    acme_ids = {line.split("|")[0] for line in lines(acme_out.files[0].path)[1:]}
    globex_ids = {line.split("|")[0] for line in lines(globex_out.files[0].path)[1:]}
    assert shared in acme_ids and shared in globex_ids
    assert acme_ids & globex_ids == {shared}  # only the id both orgs really hold
    assert not any(f"10.0.4.{i}" in acme_out.files[0].path.read_text() for i in range(1000, 1030))


def test_duplicate_device_rows_are_written_once_with_the_latest_timestamp(acme: Any, tmp_path: Path) -> None:
    """Two records with the same device, and a REDS IP that a record also holds: one row each (the rare path that
    rewrites the file), counted once, keys unique."""
    twin = {"maid": "ABCDEF99-0134-4EEC-B4AF-65855133B008", "maid_type": "IDFA", "ip": "10.9.9.9"}
    rows = [person(i) for i in range(30)] + [person(300, **twin), person(301, **twin)]
    rows.append(person(302, maid=None, ip="172.16.5.5"))
    with schema_context(acme.schema_name):
        audience = make_imported("Twins", rows)
        add_reds_events([(timezone.now() - dt.timedelta(days=1), str(audience.pk), "172.16.5.5", "IP")])
        result = export(tmp_path, audience)
    body = [line.split("|") for line in lines(result.files[0].path)[1:]]
    assert result.rows == len(body) == 30 + 1 + 1
    assert sum(1 for r in body if r[0] == twin["maid"]) == 1
    (ip_row,) = [r for r in body if r[2] == "172.16.5.5"]
    assert int(ip_row[3]) == int(body[0][3])  # the later of the two times: the load (the REDS event is a day old)
    assert result.keys is not None and result.keys.len() == result.keys.n_unique() == result.rows
    assert result.files[0].sha256 == hashlib.sha256(result.files[0].path.read_bytes()).hexdigest()


def _reference_keys(rows: Any, segment: str) -> Any:
    """The member key as first defined (polars string slices): stored keys must keep their values."""
    import numpy as np
    import polars as pl

    from activation import exports

    parts = rows.select(*exports._words("advertising_id", 36, (0, 8, 16, 24, 28)),
                        *exports._words("ip_address", 16, (0, 8)))  # fmt: skip
    kind = np.where((rows["id_type"] == "IDFA").fill_null(False).to_numpy(), np.uint64(1), np.uint64(2))
    with np.errstate(over="ignore"):
        z = np.full(rows.height, np.uint64(exports.segment_hash(segment)), dtype=np.uint64)
        for word, k in zip([*(s.to_numpy() for s in parts.iter_columns()), kind], exports._K, strict=True):
            z += word * k
        for mult in (exports._M1, exports._M2, None):
            z ^= z >> exports._S33
            if mult is not None:
                z *= mult
    return pl.Series("key", z)


@pytest.mark.parametrize("odd", [None, "", "short-id", "X" * 40, "ABCDEF99-0134-4EEC-B4AF-65855133B008"])
def test_member_keys_fast_path_equals_the_reference_words(odd: str | None) -> None:
    """The Arrow-buffer words give the stored keys' exact values, with nulls, sliced frames, and (falling back)
    ids of another length; a pinned value guards against any change of the function."""
    import random

    import polars as pl

    from activation.exports import member_keys

    rng = random.Random(7)
    hexd = "0123456789abcdef"

    def uuid() -> str:
        t = "".join(rng.choice(hexd) for _ in range(32))
        return f"{t[:8]}-{t[8:12]}-{t[12:16]}-{t[16:20]}-{t[20:]}"

    n = 500
    ids = [None if i % 7 == 0 else (uuid().upper() if i % 2 else uuid()) for i in range(n)]
    ids[3] = odd
    ips = [None if i % 5 == 0 else f"{rng.randint(1, 255)}.{i % 256}.{rng.randint(0, 255)}.{i % 7}" for i in range(n)]
    ips[4] = "255.255.255.255"
    kinds = [None if a is None else ("IDFA" if a.isupper() else "AAID") for a in ids]
    rows = pl.DataFrame({"advertising_id": ids, "id_type": kinds, "ip_address": ips}, schema=dict.fromkeys(
        ["advertising_id", "id_type", "ip_address"], pl.String))  # fmt: skip
    rows = pl.concat([rows.slice(0, 200), rows.slice(200)], rechunk=False)  # two chunks
    for frame in (rows, rows.slice(37, 300)):  # a slice: an Arrow array with an offset
        assert member_keys(frame, "P360_1_X").to_list() == _reference_keys(frame, "P360_1_X").to_list()
    pinned = pl.DataFrame({"advertising_id": ["ABCDEF99-0134-4EEC-B4AF-65855133B008"], "id_type": ["IDFA"],
                           "ip_address": ["10.9.9.9"]})  # fmt: skip
    assert member_keys(pinned, "P360_1_X").item() == 11399978788927258469  # the value before the fast path


def test_id_type_spellings_are_read_case_blind() -> None:
    """Any case of IDFA is an IDFA (upper-cased id); every other type, or none, is an AAID (lower-cased id)."""
    import polars as pl

    from activation.exports import device_frame

    upper, lower = "ABCDEF01-0134-4EEC-B4AF-65855133B008", "abcdef01-0134-4eec-b4af-65855133b008"
    types = ["IDFA", "idfa", "IdFa", "GAID", "AAID", "X", None]
    raw = pl.DataFrame({"maid": [upper if i % 2 else lower for i in range(len(types))], "maid_type": types,
                        "ip": [None] * len(types)}, schema=dict.fromkeys(["maid", "maid_type", "ip"], pl.String))  # fmt: skip
    rows, skipped = device_frame(raw, 1)
    assert rows.select("advertising_id", "id_type").rows() == [(upper, "IDFA")] * 3 + [(lower, "AAID")] * 4
    assert skipped == {"opted_out": 0, "invalid_maid": 0, "invalid_ip": 0, "no_device_id": 0}


def test_a_device_in_two_segments_is_one_row_with_two_ones(acme: Any, tmp_path: Path) -> None:
    """LiveRamp's column rule (reference 3.3): all data for one identifier on one row, a column per segment. A
    device in both segments (or twice in one) is one row; the member keys are the (device, segment) pairs, the
    same in either layout; split mode has each device once per file."""
    twin = {"maid": "ABCDEF99-0134-4EEC-B4AF-65855133B008", "maid_type": "IDFA", "ip": "10.9.9.9"}
    with schema_context(acme.schema_name):
        a = make_imported("Seg A", [person(i) for i in range(30)] + [person(300, **twin), person(301, **twin)])
        b = make_imported("Seg B", [person(i) for i in range(20, 50)] + [person(302, **twin)])
        add_reds_events([(timezone.now() - dt.timedelta(days=1), str(b.pk), "172.16.5.5", "IP")])
        merged = export(tmp_path / "merged", a, b)
        split = export(tmp_path / "split", a, b, merged=False)
    (info,) = merged.files
    content = lines(info.path)
    assert content[0] == f"advertising_id|id_type|ip_address|timestamp|P360_{a.pk}_SegA|P360_{b.pk}_SegB"
    body = [line.split("|") for line in content[1:]]
    assert merged.rows == info.rows == len(body) == 50 + 1 + 1  # 50 people, the twin device, B's REDS IP
    by_ip = {r[2]: r for r in body}
    assert len(by_ip) == len(body)  # every device once
    assert by_ip[person(25)["ip"]][4:] == ["1", "1"]  # in both segments: one row, two `1`s
    assert by_ip[person(5)["ip"]][4:] == ["1", ""] and by_ip[person(45)["ip"]][4:] == ["", "1"]
    assert by_ip[twin["ip"]][:2] == [twin["maid"], "IDFA"] and by_ip[twin["ip"]][4:] == ["1", "1"]
    assert by_ip["172.16.5.5"][:2] == ["", ""] and by_ip["172.16.5.5"][4:] == ["", "1"]
    assert int(by_ip[person(25)["ip"]][3]) == max(int(r[3]) for r in body)  # the later load of the two
    assert info.sha256 == hashlib.sha256(info.path.read_bytes()).hexdigest()
    # The diff's unit is unchanged: one key per (device, segment) pair, whichever layout wrote them.
    assert merged.keys is not None and split.keys is not None
    assert merged.keys.len() == merged.keys.n_unique() == 31 + 32
    assert merged.keys.to_list() == split.keys.to_list()
    for f in split.files:
        rows = [line.split("|") for line in lines(f.path)[1:]]
        assert len({(r[0], r[2]) for r in rows}) == len(rows)  # each device once per file
        assert sum(1 for r in rows if r[0] == twin["maid"]) == 1
    assert [f.rows for f in split.files] == [31, 32]


def test_501_segments_are_cut_into_files_of_at_most_500_columns(acme: Any, tmp_path: Path) -> None:
    """LiveRamp takes at most 500 segment data fields a file (reference 3.5): 501 segments make two complete
    files, each with its own header, named apart, the columns in the audiences' id order."""
    from audiences.models import Audience, AudienceKind, AudienceStatus

    with schema_context(acme.schema_name):
        first = make_imported("S0", [person(i) for i in range(30)])
        more = Audience.objects.bulk_create(
            Audience(name=f"S{n}", kind=AudienceKind.IMPORTED, status=AudienceStatus.READY,
                     current_version_id=first.current_version_id, record_count=30)
            for n in range(1, 501)
        )  # fmt: skip
        audiences = [first, *more]
        result = export(tmp_path, *reversed(audiences), tag="-D7")  # the columns follow the audiences' ids
    assert [f.name.split("_")[1] for f in result.files] == ["P360Merged-S1-D7", "P360Merged-S2-D7"]
    headers = [lines(f.path)[0].split("|") for f in result.files]
    assert [len(h) - 4 for h in headers] == [500, 1]
    assert [c for h in headers for c in h[4:]] == [f"P360_{a.pk}_S{n}" for n, a in enumerate(audiences)]
    for f in result.files:
        body = [line.split("|") for line in lines(f.path)[1:]]
        assert f.rows == len(body) == 30 and {tuple(r[4:]) for r in body} == {("1",) * (len(r) - 4) for r in body}
        assert max(len(line) for line in lines(f.path)) <= 10_000
    assert result.keys is not None and result.keys.len() == 30 * 501


def test_segment_headers_and_column_cuts_follow_liveramps_limits(acme: Any) -> None:
    import re

    from activation.exports import segment_chunks, segment_column

    with schema_context(acme.schema_name):
        odd = make_imported("Ça va! 100% [new] x" + "y" * 150, [person(0)])
    assert re.fullmatch(r"P360_\d+_[A-Za-z0-9]+", segment_column(odd)) and len(segment_column(odd)) <= 128
    assert [len(c) for c in segment_chunks([f"S{n}" for n in range(1001)])] == [500, 500, 1]
    long = [f"P360_{n}_" + "X" * 110 for n in range(200)]  # 500 of these would make a 60,000-char header
    chunks = segment_chunks(long)
    assert sum(len(c) for c in chunks) == 200 and len(chunks) > 2
    for c in chunks:
        assert (
            len("|".join(["advertising_id", "id_type", "ip_address", "timestamp", *long[c.start : c.stop]])) <= 10_000
        )


def test_grouping_on_keys_equals_a_polars_group_by() -> None:
    """The merged layout's per-device grouping (numpy on 64-bit keys) against the obvious polars group_by: the
    same devices in first-seen order, the same latest timestamps, the same segment flags in every column cut."""
    import numpy as np
    import polars as pl

    from activation.exports import _memberships, segment_flags

    rng = np.random.default_rng(11)
    n, segments = 5_000, 7
    keys = rng.integers(0, 900, n).astype(np.uint64)  # many devices in several segments, some twice in one
    segs = rng.integers(0, segments, n)
    stamps = rng.integers(1_000, 2_000, n)
    m = _memberships(keys, segs, stamps, segments)
    frame = pl.DataFrame({"key": keys, "seg": segs, "ts": stamps})
    expected = frame.group_by("key", maintain_order=True).agg(pl.col("ts").max(), pl.col("seg").unique().sort())
    assert keys[m.keep].tolist() == expected["key"].to_list()  # first-seen order, each device once
    devices = m.device[m.keep]
    assert m.latest[devices].tolist() == expected["ts"].to_list()
    for columns in (range(0, segments), range(2, 5), range(6, 7)):
        flags = segment_flags(m, devices, columns)
        want = [[int(s in set(row)) for s in columns] for row in expected["seg"].to_list()]
        assert flags.tolist() == want
