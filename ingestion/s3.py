"""One way to build an S3 client for a source whose bucket settings share a prefix (`P360_SURFSIDE_*`,
`P360_BOMBORA_*`): region, optional endpoint (any S3 API, moto in tests) and keys (else boto3's own chain)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from django.conf import settings


def s3_client_for(prefix: str, *, read_timeout: int) -> Any:
    """An S3 client from the `<prefix>_REGION`, `_ENDPOINT_URL`, `_ACCESS_KEY_ID`, `_SECRET_ACCESS_KEY` settings.

    SigV4 and path-style addressing: what S3-compatible endpoints (and presigned URLs against them) need.
    """
    kwargs: dict[str, Any] = {
        "region_name": getattr(settings, f"{prefix}_REGION"),
        "config": Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=10,
            read_timeout=read_timeout,
        ),
    }
    if endpoint := getattr(settings, f"{prefix}_ENDPOINT_URL"):
        kwargs["endpoint_url"] = endpoint
    if key_id := getattr(settings, f"{prefix}_ACCESS_KEY_ID"):
        kwargs["aws_access_key_id"] = key_id
        kwargs["aws_secret_access_key"] = getattr(settings, f"{prefix}_SECRET_ACCESS_KEY")
    return boto3.client("s3", **kwargs)
