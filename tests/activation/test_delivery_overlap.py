"""The SFTP pre-upload that overlaps the write (activation.transport.PartStreamer) keeps the delivery protocol:
a cut mid-file still ends with exactly one complete remote file and one ledger row marked sent; a part that is
rewritten after duplicates were found is delivered as rewritten; two organisations' deliveries never mix; a
dry run uploads nothing. Also: a delivery whose baseline kept no member set says so instead of counting adds,
and a renamed audience's TTD segment moves its members to the new name."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from django_tenants.utils import schema_context

from activation import exports
from activation.delivery import start_delivery
from activation.models import Delivery, DeliveryStatus, TtdMember
from tests.activation.conftest import person
from tests.activation.test_delivery import remote, sftp_destination
from tests.activation.test_ttd import map_everything, ttd_destination, uid
from tests.audiences.builder_helpers import make_imported

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_blocks(monkeypatch: Any) -> None:
    """COPY blocks of ~2 KB: the part file grows in many steps while the streamer is uploading it."""
    monkeypatch.setattr(exports, "BATCH_BYTES", 2048)
    monkeypatch.setattr("activation.transport.STREAM_CHUNK", 1024)


def _one_complete_file(sftp: Any, d: Delivery) -> bytes:
    (info,) = d.files
    files = remote(sftp)
    assert list(files) == [info["name"]]  # exactly one file, no `.part` left
    body = files[info["name"]]
    assert len(body) == info["bytes"] and hashlib.sha256(body).hexdigest() == info["sha256"]
    return body


def test_streamed_parts_are_uploaded_once_and_renamed_once(acme: Any, sftp: Any, s3_staging: Any,
                                                           small_blocks: None, monkeypatch: Any) -> None:  # fmt: skip
    from activation import delivery, transport

    trusted: list[set[str]] = []

    def spy(*args: Any, uploaded: set[str] | None = None, **kwargs: Any) -> Any:
        trusted.append(set(uploaded or ()))
        return transport.push_sftp(*args, uploaded=uploaded, **kwargs)

    monkeypatch.setattr(delivery, "push_sftp", spy)
    with schema_context(acme.schema_name):
        audience = make_imported("Streamed", [person(i) for i in range(600)])
        dest = sftp_destination(sftp, [audience], name="Streamed")
        d = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert d.status == DeliveryStatus.SENT and d.receipt["tries"] == 1, d.error
        body = _one_complete_file(sftp, d)
        assert body.count(b"\n") == 601
        assert trusted == [{d.files[0]["name"]}]  # the streamer's `.part` held exactly the file's bytes
        assert sftp.uploads == 1 and sftp.renames == 1  # the streamed `.part` was renamed, not uploaded again
        assert len(d.staged) == 1  # staged beside the push


def test_a_part_finished_while_the_streamer_was_sending_is_still_trusted(acme: Any, sftp: Any, s3_staging: Any,
                                                                           monkeypatch: Any) -> None:  # fmt: skip
    """The race CI met once: the streamer read (size, done=False), the writer then closed the part and the caller
    ended the stream; the streamer must look at the part again rather than give it up as unfinished."""
    import time

    from activation import delivery, transport

    original = transport.PartStreamer._available

    staled: list[str] = []

    def stale(self: Any, part: Any) -> tuple[int, bool]:
        size, done = original(self, part)
        if done and not staled:  # once: report the part as still growing until the caller has ended the stream
            staled.append(part.name)
            while not self._ended:
                time.sleep(0.005)
            return size, False
        return size, done

    trusted: list[set[str]] = []

    def spy(*args: Any, uploaded: set[str] | None = None, **kwargs: Any) -> Any:
        trusted.append(set(uploaded or ()))
        return transport.push_sftp(*args, uploaded=uploaded, **kwargs)

    monkeypatch.setattr(transport.PartStreamer, "_available", stale)
    monkeypatch.setattr(delivery, "push_sftp", spy)
    with schema_context(acme.schema_name):
        audience = make_imported("Raced", [person(i) for i in range(60)])
        dest = sftp_destination(sftp, [audience], name="Raced")
        d = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert d.status == DeliveryStatus.SENT, d.error
        _one_complete_file(sftp, d)
        assert staled and trusted == [{d.files[0]["name"]}] and sftp.uploads == 1


def test_a_cut_mid_stream_ends_with_one_complete_file_and_one_sent_row(acme: Any, sftp: Any, s3_staging: Any,
                                                                      small_blocks: None) -> None:  # fmt: skip
    with schema_context(acme.schema_name):
        audience = make_imported("Cut stream", [person(i) for i in range(600)])
        dest = sftp_destination(sftp, [audience], name="Cut stream")
        sftp.cut_after(20_000)  # inside the file, while it is still being written and streamed
        d = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert d.status == DeliveryStatus.SENT and d.receipt["tries"] == 2, d.error
        _one_complete_file(sftp, d)
        assert sftp.renames == 1 and sftp.uploads == 2  # the cut stream, then one whole upload
        assert Delivery.objects.filter(destination=dest, status=DeliveryStatus.SENT).count() == 1
        # The same delivery again is a no-op; a new one sends its own file once.
        again = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert again.status == DeliveryStatus.SENT and sftp.renames == 2
        assert Delivery.objects.filter(destination=dest, status=DeliveryStatus.SENT).count() == 2


def test_a_part_rewritten_for_duplicates_is_delivered_as_rewritten(acme: Any, sftp: Any, s3_staging: Any,
                                                                    small_blocks: None) -> None:  # fmt: skip
    twin = {"maid": "ABCDEF99-0134-4EEC-B4AF-65855133B008", "maid_type": "IDFA", "ip": "10.9.9.9"}
    rows = [person(i) for i in range(300)] + [person(900, **twin), person(901, **twin)]
    with schema_context(acme.schema_name):
        audience = make_imported("Twins streamed", rows)
        dest = sftp_destination(sftp, [audience], name="Twins")
        d = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert d.status == DeliveryStatus.SENT, d.error
        body = _one_complete_file(sftp, d)
        assert body.count(twin["maid"].encode()) == 1 and d.rows == 301
        assert sftp.renames == 1


def test_a_failed_export_leaves_no_part_on_the_server(acme: Any, sftp: Any, s3_staging: Any,
                                                      small_blocks: None) -> None:  # fmt: skip
    with schema_context(acme.schema_name):
        audience = make_imported("Too few", [person(i) for i in range(20)])  # LiveRamp refuses < 25 rows
        dest = sftp_destination(sftp, [audience], name="Too few")
        d = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert d.status == DeliveryStatus.FAILED and "below 25 rows" in d.error
        assert remote(sftp) == {} and sftp.renames == 0


def test_a_dry_run_uploads_nothing(acme: Any, sftp: Any, s3_staging: Any) -> None:
    with schema_context(acme.schema_name):
        audience = make_imported("Dry", [person(i) for i in range(40)])
        dest = sftp_destination(sftp, [audience], name="Dry")
        d = start_delivery(destination=dest, actor=None, dry_run=True)
        assert d.status == DeliveryStatus.DRY_RUN and sftp.uploads == 0 and remote(sftp) == {}


def test_two_orgs_deliveries_never_mix(acme: Any, globex: Any, sftp: Any, s3_staging: Any,
                                       small_blocks: None) -> None:  # fmt: skip
    shared = "AAAAAAAA-0134-4EEC-B4AF-65855133B008"
    only_globex = "BBBBBBBB-0134-4EEC-B4AF-65855133B008"
    with schema_context(globex.schema_name):
        g_audience = make_imported("Globex list", [person(i, maid=shared) if i == 0 else
                                                   person(i, maid=only_globex) if i == 1 else person(1000 + i)
                                                   for i in range(40)])  # fmt: skip
        g_dest = sftp_destination(sftp, [g_audience], name="Same remote")
    with schema_context(acme.schema_name):
        a_audience = make_imported("Acme list", [person(i, maid=shared) if i == 0 else person(i) for i in range(40)])
        a_dest = sftp_destination(sftp, [a_audience], name="Same remote")
        a = start_delivery(destination=a_dest, actor=None, dry_run=False, inline=True)
    with schema_context(globex.schema_name):
        g = start_delivery(destination=g_dest, actor=None, dry_run=False, inline=True)
    assert a.status == g.status == DeliveryStatus.SENT, (a.error, g.error)
    files = remote(sftp)
    (a_name,), (g_name,) = [f["name"] for f in a.files], [f["name"] for f in g.files]
    assert a_name != g_name and set(files) == {a_name, g_name}
    acme_body, globex_body = files[a_name].lower(), files[g_name].lower()  # AAID ids are written lower-case
    assert shared.lower().encode() in acme_body and only_globex.lower().encode() not in acme_body
    assert b"globex" not in acme_body and only_globex.lower().encode() in globex_body
    assert hashlib.sha256(files[a_name]).hexdigest() == a.files[0]["sha256"]


def test_a_baseline_without_member_set_is_reported_unknown(acme: Any, sftp: Any, s3_staging: Any) -> None:
    """A delivery sent before member files existed (or whose file is gone): the next diff cannot be counted and
    says so; the one after is counted again against the stored set."""
    with schema_context(acme.schema_name):
        audience = make_imported("Upgraded", [person(i) for i in range(40)])
        dest = sftp_destination(sftp, [audience], name="Upgraded")
        first = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert (first.added, first.removed, first.diff_note) == (40, 0, "")
        Delivery.objects.filter(pk=first.pk).update(members_file="")  # as left by the upgrade
        make_imported("Upgraded", [person(i) for i in range(5, 45)])
        second = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert second.status == DeliveryStatus.SENT, second.error
        assert second.added is None and second.removed is None
        assert f"baseline unknown: delivery #{first.pk} kept no member set" in second.diff_note
        third = start_delivery(destination=dest, actor=None, dry_run=True)
        assert (third.added, third.removed, third.diff_note) == (0, 0, "")


def test_a_renamed_audience_moves_its_ttd_segment(acme: Any, ttd: Any) -> None:
    with schema_context(acme.schema_name):
        audience = make_imported(
            "Loyal buyers", [{**person(i), "phone_e164": None, "phone_sha256": None} for i in range(30)]
        )
        map_everything()
        dest = ttd_destination(ttd, [audience], name="TTD rename")
        first = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert first.status == DeliveryStatus.SENT, first.error
        old = f"P360_{audience.pk}_LoyalBuyers"
        assert len(ttd.segments[old]) == 30
        audience.name = "VIP buyers"
        audience.save(update_fields=["name"])
        second = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert second.status == DeliveryStatus.SENT, second.error
        new = f"P360_{audience.pk}_VIPBuyers"
        assert len(ttd.segments[new]) == 30 and not ttd.segments.get(old)  # moved, not duplicated
        assert TtdMember.objects.filter(destination=dest, segment=old, status="removed").count() == 30
        assert TtdMember.objects.filter(destination=dest, segment=new, status="sent").count() == 30
        assert uid(3) in ttd.segments[new]
        # The next delivery sends nothing to the old name again.
        third = start_delivery(destination=dest, actor=None, dry_run=True)
        assert (third.added, third.removed) == (0, 0)


def test_gzip_destination_gets_gzipped_parts_streamed_and_deduplicated(acme: Any, sftp: Any, s3_staging: Any,
                                                                       small_blocks: None) -> None:  # fmt: skip
    """Per destination `compression: gzip` (LiveRamp accepts gzip, reference 3.1): `<name>.psv.gz`, one gzip
    stream with the header, streamed while written, the duplicate rewrite reads and writes gzip too."""
    import gzip

    from activation.services import destination_update

    twin = {"maid": "ABCDEF99-0134-4EEC-B4AF-65855133B008", "maid_type": "IDFA", "ip": "10.9.9.9"}
    rows = [person(i) for i in range(500)] + [person(900, **twin), person(901, **twin)]
    with schema_context(acme.schema_name):
        audience = make_imported("Zipped", rows)
        dest = sftp_destination(sftp, [audience], name="Zipped")
        dest = destination_update(actor=None, destination=dest, data={"compression": "gzip"})
        d = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert d.status == DeliveryStatus.SENT, d.error
        (info,) = d.files
        assert info["name"].endswith("_file-part-1.psv.gz")
        body = gzip.decompress(_one_complete_file(sftp, d)).decode()
        lines = body.splitlines()
        assert lines[0] == f"advertising_id|id_type|ip_address|timestamp|P360_{audience.pk}_Zipped"
        assert len(lines) == 1 + 501 == 1 + d.rows and body.count(twin["maid"]) == 1
        assert sftp.renames == 1
        with pytest.raises(Exception, match="unknown compression"):
            destination_update(actor=None, destination=dest, data={"compression": "zip"})
