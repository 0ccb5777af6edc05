"""Helpers for ingestion tests: files, commands, reading back metrics."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.core.management.base import CommandError
from django_tenants.utils import schema_context

SURFSIDE_HEADER = [
    "Date",
    "Campaign",
    "Strategy",
    "Placement",
    "Creative",
    "Impressions",
    "Clicks",
    "Conversions",
    "Conversion Revenue",
]
DAY = dt.date(2026, 11, 20)


def write_csv(path: Path, header: list[str], rows: list[list[Any]], delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def surfside_rows(day: dt.date = DAY, n: int = 4) -> list[list[Any]]:
    """n rows: campaigns A/B, strategies S1/S2, placements P1.., creatives C1.."""
    rows = []
    for i in range(n):
        rows.append(
            [
                day.isoformat(),
                f"Camp {'AB'[i % 2]}",
                f"Strat {i % 3}",
                f"Place {i}",
                f"Creative {i}",
                1000 * (i + 1) + 234,
                10 * (i + 1) + 3,
                i,
                f"{12.5 * i:.2f}",
            ]
        )
    return rows


def ingest(*args: str) -> dict[str, Any]:
    """Run `ingest ... --json` in-process; returns the JSON (raises CommandError on failure)."""
    out = io.StringIO()
    call_command("ingest", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def ingest_failing(*args: str) -> tuple[str, dict[str, Any] | None]:
    out = io.StringIO()
    try:
        call_command("ingest", *args, "--json", stdout=out)
    except CommandError as exc:
        text = out.getvalue().strip()
        return str(exc), (json.loads(text) if text else None)
    raise AssertionError(f"ingest {args} succeeded: {out.getvalue()}")


def set_cpm(org: Any, cpm: str, day: str = "2026-01-01") -> None:
    call_command("set_cpm", "--org", org.slug, cpm, "--effective-date", day, stdout=io.StringIO())


def metrics(org: Any, **filters: Any) -> list[Any]:
    from campaigns.models import DailyMetric

    with schema_context(org.schema_name):
        return list(
            DailyMetric.objects.filter(**filters)
            .select_related("campaign", "strategy", "placement", "creative")
            .order_by("date", "campaign__name", "strategy__name", "placement__name", "creative__name")
        )


def api_metrics(client: Any, org: Any, **params: str) -> Any:
    return client.get(f"/o/{org.slug}/api/v1/metrics", params)


def D(value: str) -> Decimal:
    return Decimal(value)


@contextmanager
def moto_bucket(bucket: str) -> Iterator[tuple[str, Any]]:
    """A real S3 API (moto's threaded server on 127.0.0.1) with one bucket: (endpoint, boto3 client)."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
        )
        client.create_bucket(Bucket=bucket)
        yield endpoint, client
    finally:
        server.stop()
