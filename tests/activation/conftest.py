"""Activation fixtures: a local UID2 operator (session), settings pointing at it, and audiences with records."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.activation.uid2_operator import API_KEY, SECRET, Uid2Operator


def h(value: str) -> str:
    return base64.b64encode(hashlib.sha256(value.encode()).digest()).decode()


@pytest.fixture(scope="session")
def uid2_operator() -> Iterator[Uid2Operator]:
    operator = Uid2Operator().start()
    yield operator
    operator.stop()


@pytest.fixture
def operator(uid2_operator: Uid2Operator, settings: Any) -> Uid2Operator:
    uid2_operator.reset()
    settings.P360_UID2_BASE_URL = uid2_operator.base_url
    settings.P360_UID2_API_KEY = API_KEY
    settings.P360_UID2_SECRET_KEY = SECRET
    settings.P360_UID2_BACKOFF_BASE = 0.01
    settings.P360_UID2_BACKOFF_CAP = 0.05
    return uid2_operator


@pytest.fixture(autouse=True)
def _activation_settings(settings: Any, tmp_path_factory: Any) -> None:
    location = tmp_path_factory.mktemp("media")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(location)}},
    }
    settings.P360_DELIVERY_ALERT_EMAILS = ["ops@p360.test"]


def person(i: int, **extra: Any) -> dict[str, Any]:
    """A record with email (+ hash), phone (+ hash), a MAID and an IP; `extra` overrides fields."""
    email = f"person{i}@example.com"
    phone = f"+1555000{i:04d}"
    row: dict[str, Any] = {
        "email": email,
        "email_normalized": email,
        "email_sha256": h(email),
        "phone": phone,
        "phone_e164": phone,
        "phone_sha256": h(phone),
        "first_name": f"First{i}",
        "last_name": f"Last{i}",
        "maid": f"{i:08X}-0134-4EEC-B4AF-65855133B008" if i % 2 else f"{i:08x}-aaaa-4bbb-8ccc-65855133b008",
        "maid_type": "IDFA" if i % 2 else "GAID",
        "ip": f"10.0.{i // 250}.{i % 250 + 1}",
    }
    row.update(extra)
    return row


@pytest.fixture(scope="session")
def sftp_server(tmp_path_factory: Any) -> Iterator[Any]:
    from tests.activation.sftp_server import SftpServer

    server = SftpServer(tmp_path_factory.mktemp("sftp-root")).start()
    yield server
    server.stop()


@pytest.fixture
def sftp(sftp_server: Any, tmp_path: Any) -> Any:
    """The server with a fresh remote folder for this test (`sftp.remote_dir`, `sftp.local_dir`)."""
    import uuid

    name = f"uploads/test-{uuid.uuid4().hex[:8]}"  # LiveRamp takes files under /uploads/<subfolder>
    (sftp_server.root / name).mkdir(parents=True)
    sftp_server.remote_dir = f"/{name}"
    sftp_server.local_dir = sftp_server.root / name
    sftp_server.cut_after(None)
    sftp_server.uploads = sftp_server.renames = 0
    sftp_server.authorized_keys, sftp_server.passwords, sftp_server.logins = [], True, []
    return sftp_server


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_staging(s3_endpoint: str, settings: Any, monkeypatch: Any) -> Any:
    """Staging goes to a fresh bucket on moto's S3 server (django-storages through the org storage)."""
    import os

    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bucket = f"p360-stage-{os.urandom(4).hex()}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    settings.P360_S3_BUCKET = bucket
    settings.P360_S3_ENDPOINT_URL = s3_endpoint
    return client, bucket


@pytest.fixture(scope="session")
def ttd_server() -> Iterator[Any]:
    from tests.activation.ttd_server import TtdStandIn

    server = TtdStandIn().start()
    yield server
    server.stop()


@pytest.fixture
def ttd(ttd_server: Any) -> Any:
    ttd_server.reset()
    return ttd_server
