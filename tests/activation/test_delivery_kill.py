"""The worker killed mid-delivery (SIGKILL right after the remote rename, before the ledger says sent), then the
reaper hands the job back: one complete remote file, one ledger row marked sent (trust items 24-25)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from django.db import connection
from django.test import override_settings
from django_tenants.utils import schema_context

from activation.models import Delivery, DeliveryStatus, Destination
from activation.services import destination_create
from audiences import records
from audiences.models import Audience
from p360.core.jobs.models import Job, JobStatus
from p360.core.jobs.services import reap_stale_jobs
from tests.activation.conftest import person
from tests.activation.sftp_server import PASSWORD, USER
from tests.audiences.builder_helpers import make_imported
from tests.cli import run_manage

pytestmark = [pytest.mark.slow, pytest.mark.django_db]
NAME = "Killed delivery"


@pytest.mark.parametrize("point", ["activation.sftp.after_rename", "activation.sftp.after_part"])
def test_killed_worker_then_reaper_gives_one_file_and_one_sent_row(point: str, killed: Any) -> None:
    outcome = killed[point]
    assert outcome["returncode"] == -9  # SIGKILL
    assert outcome["after_kill"]["status"] == DeliveryStatus.RUNNING
    assert outcome["reaped"] >= 1
    after = outcome["after_rerun"]
    assert after["statuses"] == [DeliveryStatus.SENT] and after["attempts"] == 2
    assert after["job_status"] == JobStatus.SUCCEEDED
    assert len(after["remote"]) == 1 and not after["remote"][0].endswith(".part")
    assert after["remote_bytes"] == after["ledger_bytes"]
    assert after["renames"] == 1


@pytest.fixture(scope="module")
def killed(django_db_setup: Any, django_db_blocker: Any, sftp_server: Any, s3_endpoint: str) -> Iterator[Any]:
    """Runs outside the tests' transactions (a subprocess must see the committed rows)."""
    cleanup: list[Any] = []

    def run(point: str) -> dict[str, Any]:
        outcome: dict[str, Any] = {}
        remote_name = f"kill-{os.urandom(3).hex()}"
        (sftp_server.root / remote_name).mkdir()
        sftp_server.renames = 0
        bucket = f"p360-kill-{os.urandom(3).hex()}"
        aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
        boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket=bucket)  # fmt: skip
        with django_db_blocker.unblock():
            with schema_context("org_acme"):
                audience = make_imported(f"{NAME} {remote_name}", [person(i) for i in range(50)])
                dest = destination_create(
                    actor=None, name=remote_name, kind="sftp",
                    data={"host": "127.0.0.1", "port": sftp_server.port, "username": USER,
                          "remote_dir": f"/{remote_name}", "host_key": sftp_server.host_key_line,
                          "credentials": {"password": PASSWORD}},
                    audience_ids=[audience.pk],
                )  # fmt: skip
                cleanup.append((audience, dest))
            connection.set_schema_to_public()
            env = {"P360_DB_NAME": connection.settings_dict["NAME"], "P360_FAULT": point, "P360_S3_BUCKET": bucket,
                   "P360_S3_ENDPOINT_URL": s3_endpoint, **aws}  # fmt: skip
            done = run_manage("deliver", "--org", "acme", "--destination", remote_name, "--json", env=env)
            outcome["returncode"] = done.returncode
            with schema_context("org_acme"):
                delivery = Delivery.objects.get(destination=dest)
                outcome["after_kill"] = {"status": delivery.status}
            connection.set_schema_to_public()
            saved = {k: os.environ.get(k) for k in aws}
            os.environ.update(aws)
            try:
                with override_settings(
                    P360_JOB_STALE_SECONDS=0, P360_S3_BUCKET=bucket, P360_S3_ENDPOINT_URL=s3_endpoint
                ):
                    outcome["reaped"] = reap_stale_jobs()
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            connection.set_schema_to_public()
            with schema_context("org_acme"):
                rows = list(Delivery.objects.filter(destination=dest))
                remote = sorted(p.name for p in (sftp_server.root / remote_name).iterdir())
                outcome["after_rerun"] = {
                    "statuses": [d.status for d in rows],
                    "attempts": rows[0].attempts,
                    "job_status": Job.objects.get(pk=rows[0].job_id).status,
                    "remote": remote,
                    "remote_bytes": [(sftp_server.root / remote_name / n).stat().st_size for n in remote],
                    "ledger_bytes": [f["bytes"] for f in rows[0].files],
                    "renames": sftp_server.renames,
                }
            connection.set_schema_to_public()
        return outcome

    yield {point: run(point) for point in ("activation.sftp.after_rename", "activation.sftp.after_part")}
    with django_db_blocker.unblock():
        job_ids: list[int] = []
        with schema_context("org_acme"):
            for audience, dest in cleanup:
                job_ids += [j for j in Delivery.objects.filter(destination=dest).values_list("job_id", flat=True) if j]
                Delivery.objects.filter(destination=dest).delete()
                Destination.objects.filter(pk=dest.pk).delete()
                for version in Audience.objects.filter(pk=audience.pk).values_list("versions__pk", flat=True):
                    if version:
                        records.drop_partition(version)
                Audience.objects.filter(pk=audience.pk).delete()
        connection.set_schema_to_public()
        Job.objects.filter(pk__in=job_ids).exclude(status=JobStatus.SUCCEEDED).update(status=JobStatus.CANCELLED)
