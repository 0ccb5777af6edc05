"""Surfside: the daily CSV/XLSX file of each client in an S3 bucket (document 004, module 5).

Key = prefix + pattern, both configurable (installation defaults, per-org overrides in the client
settings): `{org}` is the org slug, `{date}` the ISO day and `{yyyymmdd}` the compact day. When the
`.csv` object is missing, the same name with `.xlsx` is tried. A missing file is a failed run.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError
from django.conf import settings

from campaigns.selectors import client_settings
from ingestion.s3 import s3_client_for

if TYPE_CHECKING:
    from ingestion.models import IngestionRun

_CREDENTIAL_ERRORS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken"}


class MissingFile(Exception):
    pass


def s3_client() -> Any:
    return s3_client_for("P360_SURFSIDE", read_timeout=120)


def object_key(org_slug: str, day: dt.date) -> str:
    row = client_settings()
    prefix = (row.surfside_prefix or settings.P360_SURFSIDE_PREFIX).format(org=org_slug)
    pattern = row.surfside_pattern or settings.P360_SURFSIDE_PATTERN
    return prefix + pattern.format(date=day.isoformat(), yyyymmdd=day.strftime("%Y%m%d"), org=org_slug)


def fetch(run: IngestionRun, directory: Path) -> tuple[Path, str]:
    """Download the run's daily file into `directory`; returns (path, file name)."""
    from ingestion.services import SourceError

    bucket = settings.P360_SURFSIDE_BUCKET
    if not bucket:
        raise SourceError("Surfside is not configured: set P360_SURFSIDE_BUCKET (and its credentials)")
    assert run.org is not None and run.run_date is not None
    key = object_key(run.org.slug, run.run_date)
    candidates = [key] + ([key[: -len(".csv")] + ".xlsx"] if key.endswith(".csv") else [])
    run.params = {**run.params, "expected": f"s3://{bucket}/{key}"}
    client = s3_client()
    for candidate in candidates:
        target = directory / Path(candidate).name
        try:
            # GET (not download_file's HEAD first): the error body names the reason (InvalidAccessKeyId, ...).
            response = client.get_object(Bucket=bucket, Key=candidate)
            with target.open("wb") as handle:
                for chunk in response["Body"].iter_chunks(1 << 20):
                    handle.write(chunk)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in {"404", "NoSuchKey", "NotFound"}:
                continue
            if code in _CREDENTIAL_ERRORS or code == "403":
                raise SourceError(
                    f"S3 refused the Surfside credentials ({code}) for s3://{bucket}/{candidate}: check "
                    "P360_SURFSIDE_ACCESS_KEY_ID / P360_SURFSIDE_SECRET_ACCESS_KEY and the bucket policy"
                ) from exc
            if code == "NoSuchBucket":
                raise SourceError(f"the Surfside bucket {bucket!r} does not exist") from exc
            raise SourceError(f"S3 error {code} for s3://{bucket}/{candidate}: {exc}") from exc
        except EndpointConnectionError as exc:
            raise SourceError(f"cannot reach S3 ({exc})") from exc
        except BotoCoreError as exc:
            raise SourceError(f"S3 download failed: {exc}") from exc
        run.params = {**run.params, "s3_key": candidate}
        return target, Path(candidate).name
    raise SourceError(
        f"missing file: s3://{bucket}/{key} does not exist"
        + (" (nor the .xlsx variant)" if len(candidates) > 1 else "")
        + f"; the Surfside file for {run.run_date} has not arrived"
    )
