"""Deliveries over real protocols: staged to S3 (moto's server), pushed over SFTP (asyncssh server) as `.part`,
size-checked and renamed once; pinned host keys; a cut connection retried; ledger with diff, receipt and alerts;
the deliver command and its dry run; a generic S3 destination."""

from __future__ import annotations

import json
import logging
from io import StringIO
from typing import Any

import asyncssh
import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django_tenants.utils import schema_context

from activation.delivery import start_delivery
from activation.models import Delivery, DeliveryStatus
from activation.services import config_update, destination_create
from tests.activation.conftest import person
from tests.activation.sftp_server import PASSWORD, USER
from tests.audiences.builder_helpers import make_imported

pytestmark = pytest.mark.django_db


def sftp_destination(sftp: Any, audiences: list[Any], *, host_key: str | None = None, name: str = "LiveRamp") -> Any:
    return destination_create(
        actor=None, name=name, kind="liveramp",
        data={"host": "127.0.0.1", "port": sftp.port, "username": USER, "remote_dir": sftp.remote_dir,
              "host_key": host_key or sftp.host_key_line, "credentials": {"password": PASSWORD}},
        audience_ids=[a.pk for a in audiences],
    )  # fmt: skip


def remote(sftp: Any) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sftp.local_dir.iterdir()}


def test_sftp_delivery_staged_pushed_once_with_ledger_and_diff(acme: Any, sftp: Any, s3_staging: Any,
                                                               caplog: Any) -> None:  # fmt: skip
    client, bucket = s3_staging
    caplog.set_level(logging.DEBUG)
    with schema_context(acme.schema_name):
        audience = make_imported("Weekly", [person(i) for i in range(40)])
        dest = sftp_destination(sftp, [audience])
        first = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert first.status == DeliveryStatus.SENT, first.error
        assert first.rows == 40 and first.added == 40 and first.removed == 0 and first.attempts == 1
        assert list(first.audiences.all()) == [audience]  # the ledger knows what it carried
        assert first.members_file.endswith(f"{first.pk}/members.parquet")  # the next diff's member set
        (info,) = first.files
        files = remote(sftp)
        assert set(files) == {info["name"]}  # one complete file, no .part left
        assert sftp.renames == 1 and sftp.uploads == 1
        import hashlib

        assert hashlib.sha256(files[info["name"]]).hexdigest() == info["sha256"]
        assert first.receipt["listing"] == [{"name": info["name"], "bytes": info["bytes"]}]
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
        assert f"orgs/org_acme/deliveries/{first.pk}/{info['name']}" in keys
        # Next week: 5 people left, 3 arrived. The diff is against the last successful delivery.
        make_imported("Weekly", [person(i) for i in range(5, 43)])
        dry = start_delivery(destination=dest, actor=None, dry_run=True)
        assert dry.status == DeliveryStatus.DRY_RUN and (dry.added, dry.removed, dry.rows) == (3, 5, 38)
        assert sftp.uploads == 1  # the dry run sent nothing
    assert PASSWORD not in caplog.text


def test_dry_run_command_and_second_delivery_with_shrink_alert(acme: Any, sftp: Any, s3_staging: Any) -> None:
    with schema_context(acme.schema_name):
        audience = make_imported("Shrinking", [person(i) for i in range(100)])
        sftp_destination(sftp, [audience], name="LR shrink")
        config_update(actor=None, shrink_alert_share="0.25", alert_emails="team@acme.test")
    out = StringIO()
    call_command("deliver", "--org", "acme", "--destination", "LR shrink", "--json", stdout=out)
    sent = json.loads(out.getvalue())
    assert sent["status"] == "sent" and sent["rows"] == 100
    assert {"delivery_id", "status", "rows", "added", "removed", "files"} <= set(sent)
    with schema_context(acme.schema_name):
        make_imported("Shrinking", [person(i) for i in range(60)])
    out = StringIO()
    call_command("deliver", "--org", "acme", "--destination", "LR shrink", "--dry-run", "--json", stdout=out)
    dry = json.loads(out.getvalue())
    assert dry["status"] == "dry_run" and (dry["added"], dry["removed"]) == (0, 40)
    mail.outbox.clear()
    out = StringIO()
    call_command("deliver", "--org", "acme", "--all", "--json", stdout=out)
    assert any("shrank by 40%" in m.body for m in mail.outbox)
    assert "team@acme.test" in mail.outbox[0].to
    with pytest.raises(CommandError, match="unknown destination 'nope'"):
        call_command("deliver", "--org", "acme", "--destination", "nope", stdout=StringIO())


def test_unknown_or_changed_host_key_is_refused(acme: Any, sftp: Any, s3_staging: Any) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    with schema_context(acme.schema_name):
        audience = make_imported("Pinned", [person(i) for i in range(30)])
        dest = sftp_destination(sftp, [audience], host_key=other, name="Changed key")
        mail.outbox.clear()
        d = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert d.status == DeliveryStatus.FAILED and "not the pinned one" in d.error
        assert remote(sftp) == {} and sftp.uploads == 0
        assert any("failed" in m.body for m in mail.outbox)


def test_connection_cut_mid_file_is_retried_to_one_complete_file(acme: Any, sftp: Any, s3_staging: Any) -> None:
    with schema_context(acme.schema_name):
        audience = make_imported("Cut", [person(i) for i in range(400)])
        dest = sftp_destination(sftp, [audience], name="Cut link")
        sftp.cut_after(5000)
        d = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert d.status == DeliveryStatus.SENT, d.error
        assert d.receipt["tries"] == 2
        (info,) = d.files
        files = remote(sftp)
        assert list(files) == [info["name"]] and len(files[info["name"]]) == info["bytes"]
        assert sftp.renames == 1
        # Re-running the same (already sent) delivery is a no-op.
        from p360.core.jobs.models import Job
        from p360.core.jobs.services import run_job

        job = Job.objects.get(pk=d.job_id)
        assert run_job(job.pk) == "skipped"
        assert Delivery.objects.filter(destination=dest, status="sent").count() == 1


def test_generic_s3_destination(acme: Any, s3_staging: Any, s3_endpoint: str) -> None:
    client, _ = s3_staging
    client.create_bucket(Bucket="partner-drop")
    with schema_context(acme.schema_name):
        audience = make_imported("S3 out", [person(i) for i in range(30)])
        dest = destination_create(actor=None, name="Partner S3", kind="s3",
                                  data={"bucket": "partner-drop", "prefix": "p360/in", "endpoint_url": s3_endpoint,
                                        "credentials": {"access_key_id": "testing", "secret_access_key": "testing"}},
                                  audience_ids=[audience.pk])  # fmt: skip
        d = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert d.status == DeliveryStatus.SENT, d.error
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="partner-drop")["Contents"]]
    assert keys == [f"p360/in/{d.files[0]['name']}"]


def test_merged_redelivery_diff_counts_device_segment_pairs_exactly(acme: Any, sftp: Any, s3_staging: Any) -> None:
    """Merged deliveries in the column layout: one row per device, yet adds and removes still count (device,
    segment) pairs against the last delivery, exactly; the header keeps its columns and order; the same
    memberships delivered in split mode are no change at all."""
    with schema_context(acme.schema_name):
        a = make_imported("Club A", [person(i) for i in range(40)])
        b = make_imported("Club B", [person(i) for i in range(20, 60)])
        dest = sftp_destination(sftp, [b, a], name="Two clubs")
        first = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert first.status == DeliveryStatus.SENT, first.error
        assert (first.rows, first.added, first.removed) == (60, 80, 0)  # 60 devices, 80 memberships
        (info,) = first.files
        body = remote(sftp)[info["name"]].decode().splitlines()
        header = f"advertising_id|id_type|ip_address|timestamp|P360_{a.pk}_ClubA|P360_{b.pk}_ClubB"
        assert body[0] == header and len(body) == 61
        assert sum(1 for line in body[1:] if line.endswith("|1|1")) == 20  # the 20 people in both clubs
        # Next week: A lost people 0-4 (5 pairs removed); B gained 0-2 and 60-64 (8 pairs added; 0-2 stay on
        # their rows, now with B's `1` only).
        make_imported("Club A", [person(i) for i in range(5, 40)])
        make_imported("Club B", [person(i) for i in [0, 1, 2, *range(20, 65)]])
        second = start_delivery(destination=dest, actor=None, dry_run=False, inline=True)
        assert second.status == DeliveryStatus.SENT, second.error
        assert (second.added, second.removed) == (8, 5) and second.rows == 3 + 35 + 25
        (info2,) = second.files
        again = remote(sftp)[info2["name"]].decode().splitlines()
        assert again[0] == header  # identical header and order at every delivery
        assert next(line for line in again if f"|{person(0)['ip']}|" in line).endswith("||1")  # only in B now
        # The same memberships in split files: the same pairs, nothing added or removed.
        config_update(actor=None, push_mode="split")
        split = start_delivery(destination=dest, actor=None, dry_run=True)
        assert split.status == DeliveryStatus.DRY_RUN and (split.added, split.removed) == (0, 0)
        assert [f["rows"] for f in split.files] == [35, 48] and split.rows == 83
