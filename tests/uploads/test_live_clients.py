"""Existing tus clients over real HTTP: the Python `tuspy` client against a live server, an upload
cut off at 60 % and resumed by a fresh client, wrong offsets, and a size refusal sent before the body."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import socket
from urllib.parse import urlsplit

import pytest
import requests
from django_tenants.utils import schema_context
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError

from p360.core.uploads import services
from p360.core.uploads.storage import local_copy
from tenants.services import api_token_create
from tests.uploads.conftest import OFFSET_STREAM, TUS

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def token(acme_marketer) -> str:
    _, raw = api_token_create(user=acme_marketer, name="tuspy")
    return raw


def _raw_request(base: str, head: str, body: bytes = b"", *, half_close: bool = True, timeout: float = 10) -> bytes:
    """Send a request by hand (to cut it short or hold its body back); return what the server answers."""
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(head.encode() + body)
        if half_close:
            sock.shutdown(socket.SHUT_WR)  # the connection drops: the server reads EOF mid-body
        received = b""
        while b"\r\n\r\n" not in received:
            data = sock.recv(65536)
            if not data:
                break
            received += data
        return received


def test_tuspy_upload_interrupted_at_60_percent_resumes_and_assembles_the_same_sha256(live_tus, token):
    data = os.urandom(3 * 1024 * 1024 + 4321)
    endpoint = f"{live_tus}/o/acme/api/v1/uploads/"
    client = tus_client.TusClient(endpoint, headers={"Authorization": f"Token {token}"})
    uploader = client.uploader(
        file_stream=io.BytesIO(data),
        chunk_size=256 * 1024,
        metadata={"filename": "crm.csv", "purpose": "audience_import"},
        upload_checksum=True,  # sha1 per chunk
    )
    while uploader.offset < 0.6 * len(data):
        uploader.upload_chunk()
    sixty = uploader.offset
    assert 0.6 * len(data) <= sixty < 0.7 * len(data)

    # The connection drops in the middle of the next chunk: 300 KB of a declared 1 MB arrive.
    path = urlsplit(uploader.url).path
    cut = data[sixty : sixty + 300_000]
    answer = _raw_request(
        live_tus,
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: {TUS}\r\nUpload-Offset: {sixty}\r\n"
        f"Content-Type: {OFFSET_STREAM}\r\nContent-Length: {1024 * 1024}\r\nAuthorization: Token {token}\r\n\r\n",
        cut,
    )
    assert b" 204 " in answer.split(b"\r\n", 1)[0]
    assert f"Upload-Offset: {sixty + len(cut)}".encode() in answer  # what arrived is kept

    # A fresh client (another process, say) resumes from the server's offset (HEAD) and finishes.
    resumed = client.uploader(
        file_stream=io.BytesIO(data), url=uploader.url, chunk_size=512 * 1024, upload_checksum=True
    )
    assert resumed.offset == sixty + len(cut)
    resumed.upload()
    assert resumed.offset == len(data)

    status = requests.get(uploader.url, headers={"Authorization": f"Token {token}"}, timeout=10).json()
    assert status["status"] == "complete"
    assert status["sha256"] == hashlib.sha256(data).hexdigest()
    with schema_context("org_acme"):
        upload = services.get_completed_upload(status["id"])
        with local_copy(upload) as copy:
            assert hashlib.sha256(copy.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert upload.filename == "crm.csv" and upload.purpose == "audience_import"


def test_a_checksum_chunk_cut_short_is_discarded_over_http(live_tus, token):
    auth = {"Authorization": f"Token {token}", "Tus-Resumable": TUS}
    created = requests.post(f"{live_tus}/o/acme/api/v1/uploads/", headers={**auth, "Upload-Length": "1000"}, timeout=10)
    url = created.headers["Location"]

    digest = base64.b64encode(hashlib.sha256(b"x" * 1000).digest()).decode()
    answer = _raw_request(
        live_tus,
        f"PATCH {urlsplit(url).path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: {TUS}\r\nUpload-Offset: 0\r\n"
        f"Upload-Checksum: sha256 {digest}\r\nContent-Type: {OFFSET_STREAM}\r\nContent-Length: 1000\r\n"
        f"Authorization: Token {token}\r\n\r\n",
        b"x" * 400,
    )
    assert b" 460 " in answer.split(b"\r\n", 1)[0]
    head = requests.head(url, headers=auth, timeout=10)
    assert head.headers["Upload-Offset"] == "0"


def test_wrong_offset_over_http_is_409_and_tuspy_reports_it(live_tus, token):
    auth = {"Authorization": f"Token {token}", "Tus-Resumable": TUS}
    created = requests.post(f"{live_tus}/o/acme/api/v1/uploads/", headers={**auth, "Upload-Length": "10"}, timeout=10)
    url = created.headers["Location"]
    response = requests.patch(
        url, data=b"abc", headers={**auth, "Upload-Offset": "4", "Content-Type": OFFSET_STREAM}, timeout=10
    )
    assert response.status_code == 409
    assert response.json()["error"]["details"]["expected_offset"] == 0
    client = tus_client.TusClient(f"{live_tus}/o/acme/api/v1/uploads/", headers={"Authorization": f"Token {token}"})
    uploader = client.uploader(file_stream=io.BytesIO(b"0123456789"), url=url, chunk_size=4)
    uploader.offset = 6  # a client that lost track of the offset
    with pytest.raises(TusCommunicationError) as info:
        uploader.upload_chunk()
    assert info.value.status_code == 409


def test_over_the_limit_is_413_before_the_body_is_sent(live_tus, token, settings):
    settings.P360_UPLOAD_MAX_BYTES = 1024 * 1024
    auth = {"Authorization": f"Token {token}", "Tus-Resumable": TUS}
    too_big = requests.post(
        f"{live_tus}/o/acme/api/v1/uploads/", headers={**auth, "Upload-Length": str(2 * 1024 * 1024)}, timeout=10
    )
    assert too_big.status_code == 413
    assert "largest file you can upload is 1.0 MB" in too_big.json()["error"]["message"]
    url = requests.post(
        f"{live_tus}/o/acme/api/v1/uploads/", headers={**auth, "Upload-Length": str(1024 * 1024)}, timeout=10
    ).headers["Location"]
    # Headers announce 1 GB and no body byte is sent: the answer comes anyway, so the server never
    # waited for (or buffered) the body it refuses.
    answer = _raw_request(
        live_tus,
        f"PATCH {urlsplit(url).path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: {TUS}\r\nUpload-Offset: 0\r\n"
        f"Content-Type: {OFFSET_STREAM}\r\nContent-Length: {1024**3}\r\nAuthorization: Token {token}\r\n\r\n",
        half_close=False,
        timeout=5,
    )
    assert b" 413 " in answer.split(b"\r\n", 1)[0]
    assert requests.head(url, headers=auth, timeout=10).headers["Upload-Offset"] == "0"


def test_options_over_http(live_tus, token):
    response = requests.options(
        f"{live_tus}/o/acme/api/v1/uploads/", headers={"Authorization": f"Token {token}"}, timeout=10
    )
    assert response.status_code == 204
    assert response.headers["Tus-Version"] == TUS
    assert "creation" in response.headers["Tus-Extension"]
