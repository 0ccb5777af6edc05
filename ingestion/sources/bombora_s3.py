"""Scheduled pickup of Bombora files from S3 (`P360_BOMBORA_BUCKET` + prefix; boto3).

The daily task lists the prefix and starts one run per file not loaded yet. A file is known by its key and ETag
(the content's MD5 for ordinary uploads): a file re-delivered under the same key with new content loads again
(its week is replaced), the same file listed again does not. Files load oldest key first, so weeks arrive in order.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from ingestion.models import IngestionRun, RunStatus, Source, Trigger
from ingestion.s3 import s3_client_for

if TYPE_CHECKING:
    from p360.core.jobs.services import JobContext

logger = logging.getLogger(__name__)
SUFFIXES = (".csv", ".csv.gz", ".gz", ".txt", ".txt.gz")


def s3_client() -> Any:
    return s3_client_for("P360_BOMBORA", read_timeout=300)


def _listing() -> list[dict[str, Any]]:
    client = s3_client()
    objects: list[dict[str, Any]] = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=settings.P360_BOMBORA_BUCKET, Prefix=settings.P360_BOMBORA_PREFIX or ""):
        objects += [obj for obj in page.get("Contents", []) if obj["Key"].lower().endswith(SUFFIXES)]
    return sorted(objects, key=lambda obj: obj["Key"])


def _already_taken(key: str, etag: str) -> bool:
    return IngestionRun.objects.filter(
        source=Source.BOMBORA,
        params__s3_key=key,
        params__etag=etag,
        # A failed object is not picked up again every day (it would fail the same way): re-run it from the admin.
        status__in=[RunStatus.SUCCEEDED, RunStatus.RUNNING, RunStatus.QUEUED, RunStatus.FAILED],
    ).exists()


def pickup(*, inline: bool = False) -> list[int]:
    """Start a run for every new file under the prefix; returns the run ids (nothing when no bucket is set)."""
    from ingestion.services import create_run, start_run

    if not settings.P360_BOMBORA_BUCKET:
        logger.info("P360_BOMBORA_BUCKET is not set: no Bombora pickup")
        return []
    run_ids = []
    for obj in _listing():
        key, etag = obj["Key"], str(obj.get("ETag", "")).strip('"')
        if _already_taken(key, etag):
            continue
        run = create_run(
            source=Source.BOMBORA,
            org=None,
            trigger=Trigger.SCHEDULE,
            file_name=Path(key).name,
            # `bombora_key` survives a re-run (which drops `s3_key` to re-pull): the same object is fetched again.
            params={"s3_key": key, "bombora_key": key, "etag": etag, "bytes": obj.get("Size")},
        )
        IngestionRun.objects.filter(pk=run.pk).update(file_name=Path(key).name)
        run.file_name = Path(key).name
        start_run(run, inline=inline)
        run_ids.append(run.pk)
    return run_ids


def fetch_into_run(run: IngestionRun, ctx: JobContext | None) -> None:
    """Download the run's S3 object and keep it as the run's stored file."""
    from ingestion.services import SourceError, _store_file

    bucket = settings.P360_BOMBORA_BUCKET
    key = run.params.get("s3_key") or run.params["bombora_key"]
    if not bucket:
        raise SourceError("Bombora pickup is not configured: set P360_BOMBORA_BUCKET (and its credentials)")
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / Path(key).name
        try:
            response = s3_client().get_object(Bucket=bucket, Key=key)
            with target.open("wb") as handle:
                for chunk in response["Body"].iter_chunks(1 << 20):
                    handle.write(chunk)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            raise SourceError(f"S3 error {code} for s3://{bucket}/{key}") from exc
        except BotoCoreError as exc:
            raise SourceError(f"S3 download of s3://{bucket}/{key} failed: {exc}") from exc
        run.params = {**run.params, "s3_key": key}
        _store_file(run, target, Path(key).name)
        run.save(update_fields=["file_path", "file_name", "file_size", "content_hash", "params"])
    if ctx:
        ctx.log(f"fetched s3://{bucket}/{key} ({run.file_size:,} bytes)")
