"""tus 1.0.0 conformance of /o/<slug>/api/v1/uploads/ through the Django test client: core,
creation, creation-with-upload, termination, checksum, expiration; limits, errors, audit, access."""

from __future__ import annotations

import base64
import hashlib
import os
import tracemalloc
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from p360.core.audit.models import AuditEvent
from p360.core.uploads.models import Upload, UploadStatus
from p360.core.uploads.storage import org_storage
from tenants.services import api_token_create
from tests.uploads.conftest import OFFSET_STREAM, TUS, Tripwire, metadata_header, tus_create, tus_head, tus_patch

pytestmark = pytest.mark.django_db


def _upload(pk: str, schema: str = "org_acme") -> Upload:
    with schema_context(schema):
        return Upload.objects.get(pk=pk)


def _id(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _error(response) -> dict:  # type: ignore[no-untyped-def]
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return body["error"]


# --- discovery and version ------------------------------------------------------------------------


def test_options_advertises_version_extensions_limit_and_checksums(login, acme_marketer, settings):
    settings.P360_UPLOAD_MAX_BYTES = 5_000_000
    response = login(acme_marketer).options("/o/acme/api/v1/uploads/")  # no Tus-Resumable needed
    assert response.status_code == 204
    assert response["Tus-Version"] == TUS
    assert set(response["Tus-Extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "termination",
        "checksum",
        "expiration",
    }
    assert response["Tus-Max-Size"] == "5000000"
    assert response["Tus-Checksum-Algorithm"] == "sha1,sha256"


@pytest.mark.parametrize("version", [None, "0.2.2", "2.0.0"])
def test_requests_without_the_supported_version_get_412(login, acme_marketer, version):
    headers = {"Upload-Length": "10"} | ({"Tus-Resumable": version} if version else {})
    response = login(acme_marketer).generic("POST", "/o/acme/api/v1/uploads/", b"", content_type="", headers=headers)
    assert response.status_code == 412
    assert response["Tus-Version"] == TUS
    assert _error(response)["code"] == "unsupported_version"
    with schema_context("org_acme"):
        assert not Upload.objects.exists()


# --- creation ----------------------------------------------------------------------------------------


def test_creation_records_the_upload_and_answers_with_location_and_expiry(login, acme_marketer, upload_dirs):
    client = login(acme_marketer)
    meta = metadata_header(filename="crm export.csv", filetype="text/csv", purpose="audience_import") + ",flag"
    response = tus_create(client, size=1234, metadata=meta)
    assert response.status_code == 201, response.content
    assert response["Tus-Resumable"] == TUS
    location = response["Location"]
    assert location.startswith("http://testserver/o/acme/api/v1/uploads/")
    assert "Upload-Expires" in response and response["Upload-Offset"] == "0"
    upload = _upload(_id(location))
    assert upload.filename == "crm export.csv"
    assert upload.purpose == "audience_import"
    assert upload.metadata == {
        "filename": "crm export.csv",
        "filetype": "text/csv",
        "purpose": "audience_import",
        "flag": "",
    }
    assert upload.size == 1234 and upload.offset == 0 and upload.status == UploadStatus.UPLOADING
    assert upload.created_by == acme_marketer and upload.created_by_email == acme_marketer.email
    assert timedelta(hours=23, minutes=59) < upload.expires_at - timezone.now() <= timedelta(hours=24)
    assert (upload_dirs / "uploads" / "org_acme" / f"{upload.pk}.part").exists()
    event = AuditEvent.objects.get(action="upload.created", entity_id=str(upload.pk))
    assert event.org_slug == "acme" and event.actor_id == acme_marketer.pk
    assert event.after["filename"] == "crm export.csv"


def test_creation_over_the_size_limit_is_413_with_a_clear_message(login, acme_marketer, settings):
    settings.P360_UPLOAD_MAX_BYTES = 1024**3
    response = tus_create(login(acme_marketer), size=1024**3 + 1)
    assert response.status_code == 413
    error = _error(response)
    assert error["code"] == "payload_too_large"
    assert "1.0 GB" in error["message"] and "largest file" in error["message"]
    assert error["details"]["max_size"] == 1024**3
    assert response["Tus-Max-Size"] == str(1024**3)
    with schema_context("org_acme"):
        assert not Upload.objects.exists()


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({"Upload-Length": "abc"}, "Upload-Length"),
        ({"Upload-Length": "-1"}, "Upload-Length"),
        ({}, "Upload-Length header is required"),
        ({"Upload-Length": "10", "Upload-Metadata": "filename not-base64!"}, "Base64"),
        ({"Upload-Length": "10", "Upload-Metadata": "a YQ==,a Yg=="}, "twice"),
        ({"Upload-Length": "10", "Upload-Defer-Length": "1"}, "Defer"),
    ],
)
def test_bad_creation_headers_are_400_with_the_reason(login, acme_marketer, headers, fragment):
    response = login(acme_marketer).generic(
        "POST", "/o/acme/api/v1/uploads/", b"", content_type="", headers={"Tus-Resumable": TUS, **headers}
    )
    assert response.status_code == 400
    assert fragment in _error(response)["message"]


def test_creation_with_upload_stores_the_first_chunk(login, acme_marketer):
    client = login(acme_marketer)
    response = client.post(
        "/o/acme/api/v1/uploads/",
        data=b"hello ",
        content_type=OFFSET_STREAM,
        headers={"Tus-Resumable": TUS, "Upload-Length": "11", "Upload-Metadata": metadata_header(filename="h.txt")},
    )
    assert response.status_code == 201
    assert response["Upload-Offset"] == "6"
    url = response["Location"]
    assert tus_patch(client, url, 6, b"world").status_code == 204
    upload = _upload(_id(url))
    assert upload.status == UploadStatus.COMPLETE
    assert upload.sha256 == hashlib.sha256(b"hello world").hexdigest()


def test_an_empty_file_is_complete_at_creation(login, acme_marketer):
    response = tus_create(login(acme_marketer), size=0, metadata=metadata_header(filename="empty.csv"))
    assert response.status_code == 201
    upload = _upload(_id(response["Location"]))
    assert upload.status == UploadStatus.COMPLETE and upload.sha256 == hashlib.sha256(b"").hexdigest()


# --- core: HEAD and PATCH -------------------------------------------------------------------------


def test_head_reports_offset_length_and_metadata_and_is_not_cached(login, acme_marketer):
    client = login(acme_marketer)
    url = tus_create(client, size=10, metadata=metadata_header(filename="a.csv"))["Location"]
    tus_patch(client, url, 0, b"abcd")
    response = tus_head(client, url)
    assert response.status_code == 200
    assert response["Upload-Offset"] == "4" and response["Upload-Length"] == "10"
    assert response["Upload-Metadata"] == metadata_header(filename="a.csv")
    assert response["Cache-Control"] == "no-store"
    assert response["Tus-Resumable"] == TUS and "Upload-Expires" in response


def test_chunks_assemble_into_the_file_with_its_sha256_in_org_storage(login, acme_marketer, upload_dirs):
    client = login(acme_marketer)
    data = os.urandom(300_000)
    url = tus_create(client, size=len(data), metadata=metadata_header(filename="list.csv"))["Location"]
    offset = 0
    for chunk_size in (100_000, 150_000, 50_000):
        response = tus_patch(client, url, offset, data[offset : offset + chunk_size])
        assert response.status_code == 204, response.content
        offset += chunk_size
        assert response["Upload-Offset"] == str(offset)
    upload = _upload(_id(url))
    assert upload.status == UploadStatus.COMPLETE and upload.completed_at is not None
    assert upload.sha256 == hashlib.sha256(data).hexdigest()
    assert upload.storage_name == f"uploads/{upload.pk}/list.csv"
    stored = upload_dirs / "media" / "orgs" / "org_acme" / upload.storage_name
    assert stored.read_bytes() == data
    assert not (upload_dirs / "uploads" / "org_acme" / f"{upload.pk}.part").exists()
    assert tus_head(client, url)["Upload-Offset"] == str(len(data))
    assert AuditEvent.objects.filter(action="upload.completed", entity_id=str(upload.pk)).count() == 1
    # The JSON status for scripts.
    status = client.get(url).json()
    assert status["status"] == "complete" and status["sha256"] == upload.sha256 and status["percent"] == 100


def test_wrong_offset_is_409_and_changes_nothing(login, acme_marketer):
    client = login(acme_marketer)
    url = tus_create(client, size=10)["Location"]
    tus_patch(client, url, 0, b"abc")
    response = tus_patch(client, url, 5, b"xyz")
    assert response.status_code == 409
    error = _error(response)
    assert error["code"] == "offset_mismatch" and error["details"]["expected_offset"] == 3
    assert _upload(_id(url)).offset == 3
    assert tus_patch(client, url, 0, b"abc").status_code == 409  # replaying an old chunk too


def test_patch_needs_the_offset_stream_content_type(login, acme_marketer):
    client = login(acme_marketer)
    url = tus_create(client, size=10)["Location"]
    response = tus_patch(client, url, 0, b"abc", content_type="application/octet-stream")
    assert response.status_code == 415
    assert OFFSET_STREAM in _error(response)["message"]


def test_patch_without_upload_offset_is_400(login, acme_marketer):
    client = login(acme_marketer)
    url = tus_create(client, size=10)["Location"]
    response = client.generic("PATCH", url, b"abc", content_type=OFFSET_STREAM, headers={"Tus-Resumable": TUS})
    assert response.status_code == 400 and "Upload-Offset" in _error(response)["message"]


def test_a_chunk_past_the_declared_length_is_refused_before_reading(login, acme_marketer):
    client = login(acme_marketer)
    url = tus_create(client, size=10)["Location"]
    Tripwire.reads = 0
    response = client.generic(
        "PATCH",
        url,
        b"",
        content_type=OFFSET_STREAM,
        headers={"Tus-Resumable": TUS, "Upload-Offset": "0"},
        CONTENT_LENGTH="11",
        CONTENT_TYPE=OFFSET_STREAM,
        **{"wsgi.input": Tripwire()},
    )
    assert response.status_code == 413
    assert "past the end" in _error(response)["message"]
    assert Tripwire.reads == 0


def test_a_patch_over_the_limit_is_refused_from_content_length_before_reading(login, acme_marketer, settings):
    settings.P360_UPLOAD_MAX_BYTES = 1000
    client = login(acme_marketer)
    url = tus_create(client, size=1000)["Location"]
    Tripwire.reads = 0
    response = client.generic(
        "PATCH",
        url,
        b"",
        content_type=OFFSET_STREAM,
        headers={"Tus-Resumable": TUS, "Upload-Offset": "0"},
        CONTENT_LENGTH=str(5 * 1024**3),
        CONTENT_TYPE=OFFSET_STREAM,
        **{"wsgi.input": Tripwire()},
    )
    assert response.status_code == 413
    assert "largest file" in _error(response)["message"]
    assert Tripwire.reads == 0
    assert _upload(_id(url)).offset == 0


def test_patch_without_content_length_is_411(login, acme_marketer):
    client = login(acme_marketer)
    url = tus_create(client, size=10)["Location"]
    response = client.generic(
        "PATCH",
        url,
        b"",
        content_type=OFFSET_STREAM,
        headers={"Tus-Resumable": TUS, "Upload-Offset": "0"},
        CONTENT_LENGTH="",
        CONTENT_TYPE=OFFSET_STREAM,
    )
    assert response.status_code == 411


def test_patch_streams_the_body_with_flat_memory(login, acme_marketer):
    client = login(acme_marketer)
    size = 32 * 1024 * 1024
    url = tus_create(client, size=size)["Location"]
    body = GeneratedBody(size)  # produced on demand: any buffering by the server shows in the peak
    tracemalloc.start()
    try:
        response = client.generic(
            "PATCH",
            url,
            b"",
            headers={"Tus-Resumable": TUS, "Upload-Offset": "0"},
            CONTENT_LENGTH=str(size),
            CONTENT_TYPE=OFFSET_STREAM,
            **{"wsgi.input": body},
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 204
    assert peak < 3 * 1024 * 1024, f"peak {peak:,} bytes of Python memory for a 32 MB body"
    upload = _upload(_id(url))
    assert upload.status == UploadStatus.COMPLETE and upload.sha256 == body.sha256.hexdigest()


class GeneratedBody:
    """A request body of `size` bytes made on demand (never whole in memory), hashed as it is read."""

    def __init__(self, size: int) -> None:
        self.remaining = size
        self.block = os.urandom(1024 * 1024)
        self.sha256 = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        n = self.remaining if n is None or n < 0 else min(n, self.remaining)
        n = min(n, len(self.block))
        data = self.block[:n]
        self.remaining -= n
        self.sha256.update(data)
        return data

    def readline(self, n: int = -1) -> bytes:
        return self.read(n)


# --- checksum -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_a_correct_checksum_is_accepted(login, acme_marketer, algorithm):
    client = login(acme_marketer)
    url = tus_create(client, size=6)["Location"]
    digest = base64.b64encode(hashlib.new(algorithm, b"abcdef").digest()).decode()
    response = tus_patch(client, url, 0, b"abcdef", **{"Upload-Checksum": f"{algorithm} {digest}"})
    assert response.status_code == 204
    assert _upload(_id(url)).status == UploadStatus.COMPLETE


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_a_checksum_mismatch_is_460_and_the_chunk_is_discarded(login, acme_marketer, upload_dirs, algorithm):
    client = login(acme_marketer)
    url = tus_create(client, size=12)["Location"]
    tus_patch(client, url, 0, b"abcd")
    wrong = base64.b64encode(hashlib.new(algorithm, b"something else").digest()).decode()
    response = tus_patch(client, url, 4, b"efgh", **{"Upload-Checksum": f"{algorithm} {wrong}"})
    assert response.status_code == 460
    assert response.reason_phrase == "Checksum Mismatch"
    assert _error(response)["code"] == "checksum_mismatch"
    upload = _upload(_id(url))
    assert upload.offset == 4
    assert (upload_dirs / "uploads" / "org_acme" / f"{upload.pk}.part").read_bytes() == b"abcd"
    right = base64.b64encode(hashlib.new(algorithm, b"efgh").digest()).decode()
    assert tus_patch(client, url, 4, b"efgh", **{"Upload-Checksum": f"{algorithm} {right}"}).status_code == 204


def test_a_large_chunk_is_verified_and_hashed_in_one_pass_and_a_mismatch_still_discards_it(
    login, acme_marketer, upload_dirs, django_capture_on_commit_callbacks
):
    """A chunk of several MiB crosses the early-writeback points (its first MiBs are already on their way to disk when
    the checksum turns out wrong): the part file still goes back to the committed offset, and the retried chunk
    completes the file with the running SHA-256 of exactly the accepted bytes."""
    from p360.core.uploads import services

    client = login(acme_marketer)
    head, chunk = os.urandom(1000), os.urandom(2 * services.WRITEBACK_BYTES + 12345)
    url = tus_create(client, size=len(head) + len(chunk))["Location"]
    with django_capture_on_commit_callbacks(execute=True):
        assert tus_patch(client, url, 0, head).status_code == 204
    wrong = base64.b64encode(hashlib.sha1(chunk[:-1]).digest()).decode()
    response = tus_patch(client, url, len(head), chunk, **{"Upload-Checksum": f"sha1 {wrong}"})
    assert response.status_code == 460 and _error(response)["code"] == "checksum_mismatch"
    upload = _upload(_id(url))
    assert upload.offset == len(head)
    assert (upload_dirs / "uploads" / "org_acme" / f"{upload.pk}.part").read_bytes() == head
    right = base64.b64encode(hashlib.sha1(chunk).digest()).decode()
    assert tus_patch(client, url, len(head), chunk, **{"Upload-Checksum": f"sha1 {right}"}).status_code == 204
    upload = _upload(_id(url))
    assert upload.status == UploadStatus.COMPLETE and upload.sha256 == hashlib.sha256(head + chunk).hexdigest()


@pytest.mark.parametrize("header", ["md5 rL0Y20zC+Fzt72VPzMSk2A==", "sha1 not-base64!!", "sha256 YWJj"])
def test_unsupported_or_malformed_checksums_are_400(login, acme_marketer, header):
    client = login(acme_marketer)
    url = tus_create(client, size=6)["Location"]
    response = tus_patch(client, url, 0, b"abcdef", **{"Upload-Checksum": header})
    assert response.status_code == 400
    assert _upload(_id(url)).offset == 0


# --- termination -------------------------------------------------------------------------------------


def test_termination_aborts_deletes_the_part_and_later_requests_get_410(login, acme_marketer, upload_dirs):
    client = login(acme_marketer)
    url = tus_create(client, size=10)["Location"]
    tus_patch(client, url, 0, b"abc")
    part = upload_dirs / "uploads" / "org_acme" / f"{_id(url)}.part"
    assert part.exists()
    with_callbacks = client.delete(url, headers={"Tus-Resumable": TUS})
    assert with_callbacks.status_code == 204
    upload = _upload(_id(url))
    assert upload.status == UploadStatus.ABORTED
    assert AuditEvent.objects.filter(action="upload.terminated", entity_id=str(upload.pk)).exists()
    assert tus_head(client, url).status_code == 410
    assert tus_patch(client, url, 3, b"def").status_code == 410
    assert client.delete(url, headers={"Tus-Resumable": TUS}).status_code == 410


def test_termination_deletes_the_part_file_on_commit(
    login, acme_marketer, upload_dirs, django_capture_on_commit_callbacks
):
    client = login(acme_marketer)
    url = tus_create(client, size=10)["Location"]
    part = upload_dirs / "uploads" / "org_acme" / f"{_id(url)}.part"
    with django_capture_on_commit_callbacks(execute=True):
        client.delete(url, headers={"Tus-Resumable": TUS})
    assert not part.exists()


def test_a_complete_upload_cannot_be_terminated(login, acme_marketer):
    client = login(acme_marketer)
    url = tus_create(client, size=3)["Location"]
    tus_patch(client, url, 0, b"abc")
    response = client.delete(url, headers={"Tus-Resumable": TUS})
    assert response.status_code == 409
    assert _upload(_id(url)).status == UploadStatus.COMPLETE


def test_method_override_header_works_for_patch_and_delete(login, acme_marketer):
    client = login(acme_marketer)
    url = tus_create(client, size=6)["Location"]
    response = client.post(
        url,
        data=b"abc",
        content_type=OFFSET_STREAM,
        headers={"Tus-Resumable": TUS, "Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH"},
    )
    assert response.status_code == 204 and response["Upload-Offset"] == "3"
    response = client.generic(
        "POST", url, b"", content_type="", headers={"Tus-Resumable": TUS, "X-HTTP-Method-Override": "DELETE"}
    )
    assert response.status_code == 204


# --- unknown ids ----------------------------------------------------------------------------------------


def test_unknown_upload_is_404(login, acme_marketer):
    client = login(acme_marketer)
    url = "/o/acme/api/v1/uploads/00000000-0000-0000-0000-000000000000"
    assert tus_head(client, url).status_code == 404
    response = tus_patch(client, url, 0, b"x")
    assert response.status_code == 404 and _error(response)["code"] == "not_found"


# --- authentication, CSRF, tokens -----------------------------------------------------------------------


def test_anonymous_requests_get_401(db):
    response = tus_create(Client(), size=1)
    assert response.status_code == 401


def test_session_requests_need_the_csrf_header(acme_marketer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(acme_marketer, backend="tenants.auth.RoleBackend")
    refused = tus_create(client, size=5)
    assert refused.status_code == 403
    assert _error(refused)["code"] == "csrf_failed"
    client.get("/o/acme/uploads/")  # the page sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    response = tus_create(client, size=5, **{"X-CSRFToken": token})
    assert response.status_code == 201
    assert tus_patch(client, response["Location"], 0, b"ab").status_code == 403
    assert tus_patch(client, response["Location"], 0, b"ab", **{"X-CSRFToken": token}).status_code == 204


def test_api_token_scripts_need_no_csrf(acme_marketer):
    _, raw = api_token_create(user=acme_marketer, name="script")
    client = Client(enforce_csrf_checks=True)
    auth = {"Authorization": f"Token {raw}"}
    response = tus_create(client, size=3, **auth)
    assert response.status_code == 201
    assert tus_patch(client, response["Location"], 0, b"abc", **auth).status_code == 204
    assert _upload(_id(response["Location"])).created_by == acme_marketer


# --- tenant isolation ----------------------------------------------------------------------------------


def test_another_orgs_user_or_token_cannot_touch_an_upload(login, acme_marketer, globex_marketer, manager):
    acme_client = login(acme_marketer)
    url = tus_create(acme_client, size=10)["Location"]
    tus_patch(acme_client, url, 0, b"abc")
    upload_id = _id(url)
    globex_client = login(globex_marketer)
    _, globex_token = api_token_create(user=globex_marketer, name="globex script")
    token_client = Client()
    token = {"Authorization": f"Token {globex_token}"}
    for client, extra in ((globex_client, {}), (token_client, token)):
        # Through acme's prefix: the org itself is invisible.
        assert tus_head(client, url, **extra).status_code == 404
        assert tus_patch(client, url, 3, b"def", **extra).status_code == 404
        assert client.delete(url, headers={"Tus-Resumable": TUS, **extra}).status_code == 404
        assert client.get(url, headers=extra).status_code == 404
        # Through globex's own prefix: the id does not exist in globex's schema.
        own = f"/o/globex/api/v1/uploads/{upload_id}"
        assert tus_head(client, own, **extra).status_code == 404
        assert tus_patch(client, own, 3, b"def", **extra).status_code == 404
        assert client.get(own, headers=extra).status_code == 404
        assert client.get("/o/globex/api/v1/uploads/", headers=extra).json()["count"] == 0
    assert _upload(upload_id).offset == 3
    # A campaign manager of acme may continue it.
    assert tus_patch(login(manager), url, 3, b"defghij").status_code == 204


def test_files_are_stored_under_the_orgs_own_prefix(login, acme_marketer, globex_marketer, upload_dirs):
    for user, slug in ((acme_marketer, "acme"), (globex_marketer, "globex")):
        client = login(user)
        url = tus_create(client, slug=slug, size=4, metadata=metadata_header(filename="same.csv"))["Location"]
        tus_patch(client, url, 0, slug[:4].encode())
    with schema_context("org_acme"):
        acme_upload = Upload.objects.get()
        assert org_storage().exists(acme_upload.storage_name)
    with schema_context("org_globex"):
        globex_upload = Upload.objects.get()
        assert not org_storage().exists(acme_upload.storage_name)
    assert (upload_dirs / "media/orgs/org_acme" / acme_upload.storage_name).read_bytes() == b"acme"
    assert (upload_dirs / "media/orgs/org_globex" / globex_upload.storage_name).read_bytes() == b"glob"
    assert Path(upload_dirs / "uploads" / "org_globex").is_dir()


# --- the running SHA-256 between chunks (an optimisation with a fallback) ------------------------


def test_chunked_upload_completes_from_the_running_hash_without_rereading(
    login, acme_marketer, monkeypatch, django_capture_on_commit_callbacks
):
    from p360.core.uploads import services

    def no_reread(path):  # type: ignore[no-untyped-def]
        raise AssertionError("the staged file was hashed again")

    monkeypatch.setattr(services, "file_sha256", no_reread)
    client = login(acme_marketer)
    data = os.urandom(200_000)
    url = tus_create(client, size=len(data))["Location"]
    for start in range(0, len(data), 50_000):
        with django_capture_on_commit_callbacks(execute=True):
            assert tus_patch(client, url, start, data[start : start + 50_000]).status_code == 204
    assert _upload(_id(url)).sha256 == hashlib.sha256(data).hexdigest()


def test_without_the_running_hash_completion_hashes_the_staged_file(
    login, acme_marketer, django_capture_on_commit_callbacks
):
    from p360.core.uploads.services import running_hashes

    client = login(acme_marketer)
    data = os.urandom(100_000)
    url = tus_create(client, size=len(data))["Location"]
    with django_capture_on_commit_callbacks(execute=True):
        tus_patch(client, url, 0, data[:60_000])
    running_hashes.entries.clear()  # another worker, a restart or an eviction
    tus_patch(client, url, 60_000, data[60_000:])
    assert _upload(_id(url)).sha256 == hashlib.sha256(data).hexdigest()


def test_a_stale_running_hash_is_never_used(login, acme_marketer, django_capture_on_commit_callbacks):
    from p360.core.uploads.services import running_hashes

    client = login(acme_marketer)
    data = os.urandom(90_000)
    url = tus_create(client, size=len(data))["Location"]
    with django_capture_on_commit_callbacks(execute=True):
        tus_patch(client, url, 0, data[:30_000])
    # Offsets that do not match the upload's committed offset are ignored.
    assert running_hashes.take("org_acme", _upload(_id(url)).pk, 29_999) is None
    tus_patch(client, url, 30_000, data[30_000:60_000])  # not committed to the cache (no on_commit)
    tus_patch(client, url, 60_000, data[60_000:])
    assert _upload(_id(url)).sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\ana\\list.csv", "list.csv"),
        ("bad\x07name\x1b.csv", "badname.csv"),
        ("", "upload.bin"),
    ],
)
def test_file_names_cannot_escape_the_uploads_folder(login, acme_marketer, upload_dirs, sent, stored):
    client = login(acme_marketer)
    url = tus_create(client, size=1, metadata=metadata_header(filename=sent) if sent else None)["Location"]
    tus_patch(client, url, 0, b"x")
    upload = _upload(_id(url))
    assert upload.storage_name == f"uploads/{upload.pk}/{stored}"
    assert (upload_dirs / "media" / "orgs" / "org_acme" / upload.storage_name).read_bytes() == b"x"


def test_a_nul_in_metadata_is_a_clear_400(login, acme_marketer):
    response = tus_create(login(acme_marketer), size=1, metadata=metadata_header(filename="a\x00b.csv"))
    assert response.status_code == 400
    assert "NUL" in _error(response)["message"]


def test_a_lost_or_shortened_part_file_ends_the_upload_instead_of_corrupting_it(login, acme_marketer, upload_dirs):
    client = login(acme_marketer)
    url = tus_create(client, size=10)["Location"]
    tus_patch(client, url, 0, b"abcdef")
    (upload_dirs / "uploads" / "org_acme" / f"{_id(url)}.part").write_bytes(b"abc")  # shorter than the offset
    response = tus_patch(client, url, 6, b"ghij")
    assert response.status_code == 410
    assert "lost" in _error(response)["message"]
    assert _upload(_id(url)).status == UploadStatus.EXPIRED
