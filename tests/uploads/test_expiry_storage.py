"""Expiration (the hourly job), org storage on S3 (moto's real S3 API server), `local_copy`,
`get_completed_upload`, and concurrent PATCHes serialised by the row lock."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from p360.core.audit.models import AuditEvent
from p360.core.jobs.models import Job, JobStatus
from p360.core.jobs.schedules import SCHEDULES
from p360.core.uploads import services
from p360.core.uploads.jobs import start_expiry_jobs
from p360.core.uploads.models import Upload, UploadStatus
from p360.core.uploads.storage import NotInOrgSchema, local_copy, org_storage, part_path
from tests.uploads.conftest import metadata_header, tus_create, tus_head, tus_patch

pytestmark = pytest.mark.django_db


def _id(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


# --- expiration --------------------------------------------------------------------------------------


def _age(upload_id: str, hours: float) -> None:
    with schema_context("org_acme"):
        Upload.objects.filter(pk=upload_id).update(expires_at=timezone.now() - timedelta(hours=hours))


def test_a_stale_upload_answers_410_before_the_job_runs(login, acme_marketer):
    client = login(acme_marketer)
    url = tus_create(client, size=10)["Location"]
    tus_patch(client, url, 0, b"abc")
    _age(_id(url), 1)
    assert tus_head(client, url).status_code == 410
    response = tus_patch(client, url, 3, b"def")
    assert response.status_code == 410 and "expired" in response.json()["error"]["message"]
    with schema_context("org_acme"):
        assert Upload.objects.get(pk=_id(url)).status == UploadStatus.EXPIRED


def test_each_patch_pushes_the_expiry_forward(login, acme_marketer):
    client = login(acme_marketer)
    url = tus_create(client, size=10)["Location"]
    with schema_context("org_acme"):
        Upload.objects.filter(pk=_id(url)).update(expires_at=timezone.now() + timedelta(minutes=5))
    response = tus_patch(client, url, 0, b"abc")
    with schema_context("org_acme"):
        upload = Upload.objects.get(pk=_id(url))
    assert upload.expires_at - timezone.now() > timedelta(hours=23)
    assert "Upload-Expires" in response


def test_the_hourly_job_expires_stale_uploads_of_each_org_and_deletes_their_parts(
    login, acme_marketer, globex_marketer, upload_dirs, django_capture_on_commit_callbacks
):
    acme_client = login(acme_marketer)
    stale = tus_create(acme_client, size=10)["Location"]
    fresh = tus_create(acme_client, size=10)["Location"]
    done = tus_create(acme_client, size=2)["Location"]
    tus_patch(acme_client, stale, 0, b"abc")
    tus_patch(acme_client, done, 0, b"ok")
    globex_fresh = tus_create(login(globex_marketer), slug="globex", size=10)["Location"]
    _age(_id(stale), 2)
    # A part file left by a crash (no row) and older than the expiry window is removed too.
    orphan = upload_dirs / "uploads" / "org_acme" / "11111111-2222-3333-4444-555555555555.part"
    orphan.write_bytes(b"left over")
    old = time.time() - 25 * 3600
    os.utime(orphan, (old, old))
    stale_part = upload_dirs / "uploads" / "org_acme" / f"{_id(stale)}.part"
    assert stale_part.exists()

    with django_capture_on_commit_callbacks(execute=True):
        started = start_expiry_jobs()
    assert started == 1  # acme has work; globex has none and gets no job row
    job = Job.objects.get(kind="uploads.expire")
    assert job.org.slug == "acme" and job.status == JobStatus.SUCCEEDED
    assert job.result == {"expired": 1, "orphan_parts_removed": 1}
    with schema_context("org_acme"):
        statuses = dict(Upload.objects.values_list("pk", "status"))
    assert statuses[Upload._meta.pk.to_python(_id(stale))] == UploadStatus.EXPIRED
    assert statuses[Upload._meta.pk.to_python(_id(fresh))] == UploadStatus.UPLOADING
    assert statuses[Upload._meta.pk.to_python(_id(done))] == UploadStatus.COMPLETE
    assert not stale_part.exists() and not orphan.exists()
    assert (upload_dirs / "uploads" / "org_acme" / f"{_id(fresh)}.part").exists()
    with schema_context("org_globex"):
        assert Upload.objects.get(pk=_id(globex_fresh)).status == UploadStatus.UPLOADING
    assert AuditEvent.objects.filter(action="upload.expired", entity_id=_id(stale), org_slug="acme").exists()
    # Nothing left to do: the next hourly run starts no job.
    with django_capture_on_commit_callbacks(execute=True):
        assert start_expiry_jobs() == 0


def test_the_expiry_schedule_is_hourly():
    assert ("p360: expire stale uploads", "p360.core.uploads.jobs.start_expiry_jobs", 60) in SCHEDULES


def test_the_expiry_service_refuses_the_public_schema():
    connection.set_schema_to_public()
    with pytest.raises(Exception, match="public"):
        services.expire_stale_uploads()


# --- get_completed_upload and local_copy (local storage) -------------------------------------------


def test_get_completed_upload_and_local_copy_on_local_storage(login, acme_marketer):
    client = login(acme_marketer)
    url = tus_create(client, size=5, metadata=metadata_header(filename="x.csv"))["Location"]
    with schema_context("org_acme"):
        with pytest.raises(services.UploadNotComplete, match="uploading"):
            services.get_completed_upload(_id(url))
        with pytest.raises(Upload.DoesNotExist):
            services.get_completed_upload("00000000-0000-0000-0000-000000000000")
        with pytest.raises(services.UploadNotFound):
            services.get_completed_upload("not-a-uuid")
    tus_patch(client, url, 0, b"a,b\n1")
    with schema_context("org_acme"):
        upload = services.get_completed_upload(_id(url))
        with local_copy(upload) as path:
            assert path.read_bytes() == b"a,b\n1"
            assert path.suffix == ".csv"
    # Another org cannot see it, even by id.
    with schema_context("org_globex"), pytest.raises(services.UploadNotFound):
        services.get_completed_upload(_id(url))


def test_storage_refuses_the_public_schema():
    connection.set_schema_to_public()
    with pytest.raises(NotInOrgSchema):
        org_storage()


# --- S3 through moto's real S3 API server ------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint, settings, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bucket = f"p360-test-{os.urandom(4).hex()}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    settings.P360_S3_BUCKET = bucket
    settings.P360_S3_ENDPOINT_URL = s3_endpoint
    return client, bucket


def test_complete_uploads_go_to_s3_under_the_org_prefix_and_local_copy_downloads_them(
    login, acme_marketer, s3_bucket, upload_dirs
):
    client_s3, bucket = s3_bucket
    client = login(acme_marketer)
    data = os.urandom(6 * 1024 * 1024 + 123)  # above boto3's multipart threshold
    url = tus_create(client, size=len(data), metadata=metadata_header(filename="big list.csv"))["Location"]
    half = len(data) // 2
    assert tus_patch(client, url, 0, data[:half]).status_code == 204
    assert tus_patch(client, url, half, data[half:]).status_code == 204
    with schema_context("org_acme"):
        upload = services.get_completed_upload(_id(url))
    assert upload.sha256 == hashlib.sha256(data).hexdigest()
    key = f"orgs/org_acme/{upload.storage_name}"
    obj = client_s3.get_object(Bucket=bucket, Key=key)
    assert obj["Body"].read() == data
    assert not part_path(upload, "org_acme").exists()  # staged part removed once stored
    assert not (upload_dirs / "media").exists()  # nothing went to local media
    with schema_context("org_acme"):
        with local_copy(upload) as path:
            assert hashlib.sha256(path.read_bytes()).hexdigest() == upload.sha256
            tmp = Path(path)
        assert not tmp.exists()  # the temporary download is removed on exit
    # globex's storage is rooted at its own prefix: acme's name does not exist there.
    with schema_context("org_globex"):
        assert not org_storage().exists(upload.storage_name)
        assert org_storage().exists(upload.storage_name) is False
    with schema_context("org_acme"):
        assert org_storage().exists(upload.storage_name)


# --- concurrency: two PATCHes on one upload, each on its own connection ----------------------------


class SlowBody:
    """A body that sends its first half, then waits until released before sending the rest."""

    def __init__(self, data: bytes, release: threading.Event, started: threading.Event) -> None:
        self.data, self.pos, self.release, self.started = data, 0, release, started

    def read(self, n: int) -> bytes:
        half = len(self.data) // 2
        if self.pos >= half:
            self.started.set()
            self.release.wait(10)
        else:  # like a socket: whatever the server's read size, the first reads get at most the first half
            n = min(n, half - self.pos)
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk


def test_concurrent_patches_on_one_upload_are_serialised_by_the_row_lock(django_db_blocker, settings):
    """Thread A appends slowly while holding the row lock; thread B's PATCH at the same offset waits
    for it and then gets 409 (offset moved), never interleaving bytes. Committed rows, own connections."""
    from django.db import connections

    data_a, data_b = b"A" * 200_000, b"B" * 200_000
    release, a_started = threading.Event(), threading.Event()
    results: dict[str, object] = {}
    timeline: list[str] = []

    def in_acme(fn):  # type: ignore[no-untyped-def]
        def run() -> None:
            try:
                with schema_context("org_acme"):
                    results[threading.current_thread().name] = fn()
            except Exception as exc:
                results[threading.current_thread().name] = exc
            finally:
                connections.close_all()

        return run

    def create() -> str:  # a bare row (no audit event: committed audit rows cannot be deleted afterwards)
        upload = Upload.objects.create(size=400_000, expires_at=timezone.now() + timedelta(hours=1))
        return str(upload.pk)

    def cleanup() -> None:
        part_path(Upload(pk=upload_id)).unlink(missing_ok=True)
        Upload.objects.filter(pk=upload_id).delete()

    creator = threading.Thread(target=in_acme(create), name="create")
    with django_db_blocker.unblock():
        creator.start()
        creator.join()
        upload_id = results["create"]
        assert isinstance(upload_id, str)

        def append_a() -> Upload:
            upload = services.upload_append(
                upload_id=upload_id, offset=0, stream=SlowBody(data_a, release, a_started), length=len(data_a)
            )
            timeline.append("A done")
            return upload

        def append_b() -> Upload:
            import io

            timeline.append("B start")
            try:
                return services.upload_append(
                    upload_id=upload_id, offset=0, stream=io.BytesIO(data_b), length=len(data_b)
                )
            finally:
                timeline.append("B done")

        thread_a = threading.Thread(target=in_acme(append_a), name="a")
        thread_b = threading.Thread(target=in_acme(append_b), name="b")
        try:
            thread_a.start()
            assert a_started.wait(10)
            thread_b.start()
            time.sleep(0.5)
            assert "B done" not in timeline  # B is waiting on A's row lock
            release.set()
            thread_a.join(10)
            thread_b.join(10)
            assert isinstance(results["a"], Upload) and results["a"].offset == len(data_a)
            # B read the offset A committed: it waited for A's row lock. (Whether B's thread or A's records its
            # end first after A commits is up to the scheduler, so the timeline is not compared here.)
            assert isinstance(results["b"], services.OffsetMismatch)
            with schema_context("org_acme"):
                upload = Upload.objects.get(pk=upload_id)
                assert upload.offset == len(data_a)
                assert part_path(upload).read_bytes() == data_a
        finally:
            release.set()
            cleaner = threading.Thread(target=in_acme(cleanup), name="cleanup")
            cleaner.start()
            cleaner.join()
            connection.set_schema_to_public()


def test_the_same_content_uploaded_twice_is_found_by_its_sha256(login, acme_marketer, globex_marketer):
    from p360.core.uploads.selectors import completed_with_sha256

    for user, slug, name in (
        (acme_marketer, "acme", "a.csv"),
        (acme_marketer, "acme", "b.csv"),
        (globex_marketer, "globex", "c.csv"),
    ):
        client = login(user)
        url = tus_create(client, slug=slug, size=4, metadata=metadata_header(filename=name))["Location"]
        tus_patch(client, url, 0, b"same")
    digest = hashlib.sha256(b"same").hexdigest()
    with schema_context("org_acme"):
        assert [u.filename for u in completed_with_sha256(digest.upper())] == ["a.csv", "b.csv"]
    with schema_context("org_globex"):
        assert [u.filename for u in completed_with_sha256(digest)] == ["c.csv"]
