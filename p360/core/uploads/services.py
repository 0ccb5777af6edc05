"""Writes for resumable uploads: create, append a chunk, complete, terminate, expire.

The tus views, the page, the admin and the expiry job all go through these functions. Every one
runs inside an organisation's schema (`org_task`), and the part files and stored files carry that
schema in their paths or keys.

Invariant: the staged part file holds exactly `upload.offset` valid bytes. A request that dies
half-way may leave more bytes on disk; the next append cuts the file back to the offset first.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import threading
import unicodedata
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from p360.core.audit.services import record
from p360.core.jobs.dispatch import org_task
from p360.core.tenancy import current_org
from p360.core.uploads.models import Upload, UploadStatus
from p360.core.uploads.storage import current_schema, part_path, staging_dir, store_part

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser

    from tenants.models import User

logger = logging.getLogger(__name__)

READ_SIZE = 1024 * 1024  # request bodies are streamed to disk in reads of this size: memory stays flat (1 MiB:
# a 64 KiB read cost as much Python per byte as the disk write and the hashing together)
HASH_READ_SIZE = 1024 * 1024
# Blocks a hashing thread may lag behind the socket read. 1 (at most two blocks in memory): in same-run A/Bs under
# load, 4 blocks of slack used as much or more server CPU and was no faster.
HASH_DEPTH = 1
WRITEBACK_BYTES = 4 * 1024 * 1024  # start the disk write of each 4 MiB written, not all at the fsync
_FADVISE_DONTNEED: int | None = getattr(os, "POSIX_FADV_DONTNEED", None)  # Linux/BSD; elsewhere fsync does it all
CHECKSUM_ALGORITHMS = ("sha1", "sha256")
MAX_METADATA_BYTES = 4096
_METADATA_KEY = re.compile(r"^[!-~]+$")  # printable ASCII without spaces (commas are separators)


# --- Errors: each carries the HTTP status and the error code the tus views answer with -------------


class UploadError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class UploadNotFound(UploadError, Upload.DoesNotExist):
    status = 404
    code = "not_found"


class UploadGone(UploadError):
    """Expired or terminated: a resuming client must start a new upload."""

    status = 410
    code = "gone"


class UploadNotComplete(UploadError):
    status = 409
    code = "upload_not_complete"


class OffsetMismatch(UploadError):
    status = 409
    code = "offset_mismatch"


class UploadTooLarge(UploadError):
    status = 413
    code = "payload_too_large"


class ChecksumMismatch(UploadError):
    status = 460
    code = "checksum_mismatch"


class UploadConflict(UploadError):
    status = 409
    code = "conflict"


# --- Small helpers -------------------------------------------------------------------------------


def max_upload_bytes() -> int:
    return int(settings.P360_UPLOAD_MAX_BYTES)


def expiry_delta() -> timedelta:
    return timedelta(hours=int(settings.P360_UPLOAD_EXPIRY_HOURS))


def human_size(value: int) -> str:
    return str(filesizeformat(value)).replace("\xa0", " ")


def parse_metadata(header: str) -> dict[str, str]:
    """Decode tus `Upload-Metadata`: comma-separated `key base64(value)` pairs (value optional)."""
    if len(header) > MAX_METADATA_BYTES:
        raise UploadError(f"Upload-Metadata is longer than {MAX_METADATA_BYTES} bytes.")
    result: dict[str, str] = {}
    for raw_pair in header.split(","):
        pair = raw_pair.strip()
        if not pair:
            continue
        key, _, encoded = pair.partition(" ")
        encoded = encoded.strip()
        if not _METADATA_KEY.match(key) or " " in encoded:
            raise UploadError(f"Upload-Metadata: malformed pair {pair[:60]!r}.", header="Upload-Metadata")
        if key in result:
            raise UploadError(f"Upload-Metadata: key {key!r} appears twice.", header="Upload-Metadata")
        try:
            value = base64.b64decode(encoded, validate=True).decode("utf-8") if encoded else ""
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise UploadError(
                f"Upload-Metadata: the value of {key!r} is not Base64 of UTF-8 text.", header="Upload-Metadata"
            ) from exc
        if "\x00" in value:  # PostgreSQL text and jsonb cannot hold NUL
            raise UploadError(
                f"Upload-Metadata: the value of {key!r} contains a NUL character.", header="Upload-Metadata"
            )
        result[key] = value
    return result


def encode_metadata(metadata: dict[str, str]) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}" if value else key for key, value in metadata.items()
    )


def clean_filename(name: str) -> str:
    """A display- and storage-safe file name: last path part, no control characters, at most 200 chars."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip().strip(".")
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = f"{stem[: 200 - len(ext) - 1]}.{ext}" if dot and len(ext) <= 16 else name[:200]
    return name


def parse_checksum(header: str) -> tuple[str, str]:
    """`Upload-Checksum: <algorithm> <base64 digest>` -> (algorithm, hex digest)."""
    algorithm, _, encoded = header.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise UploadError(
            f"Upload-Checksum algorithm {algorithm!r} is not supported; use one of {', '.join(CHECKSUM_ALGORITHMS)}.",
            header="Upload-Checksum",
            supported=list(CHECKSUM_ALGORITHMS),
        )
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error as exc:
        raise UploadError("Upload-Checksum: the digest is not valid Base64.", header="Upload-Checksum") from exc
    if len(digest) != hashlib.new(algorithm).digest_size:
        raise UploadError(f"Upload-Checksum: a {algorithm} digest has {hashlib.new(algorithm).digest_size} bytes.")
    return algorithm, digest.hex()


def _actor(user: User | AnonymousUser | None) -> User | None:
    return user if user is not None and user.is_authenticated else None  # type: ignore[return-value]


def _parse_id(upload_id: uuid.UUID | str) -> uuid.UUID:
    try:
        return upload_id if isinstance(upload_id, uuid.UUID) else uuid.UUID(str(upload_id))
    except ValueError as exc:
        raise UploadNotFound("No such upload.") from exc


def _snapshot(upload: Upload) -> dict[str, Any]:
    return {
        "filename": upload.filename,
        "size": upload.size,
        "offset": upload.offset,
        "purpose": upload.purpose,
        "status": upload.status,
        "sha256": upload.sha256,
        "storage_name": upload.storage_name,
    }


def check_size(size: int) -> None:
    limit = max_upload_bytes()
    if size > limit:
        raise UploadTooLarge(
            f"The file is {human_size(size)}; the largest file you can upload is {human_size(limit)}.",
            size=size,
            max_size=limit,
        )


# --- Reads used by the views ---------------------------------------------------------------------


def get_upload(upload_id: uuid.UUID | str) -> Upload:
    """An upload of the current org that a client may still talk to (404 unknown, 410 expired/aborted)."""
    upload = Upload.objects.filter(pk=_parse_id(upload_id)).first()
    if upload is None:
        raise UploadNotFound("No such upload.")
    if upload.status == UploadStatus.ABORTED:
        raise UploadGone("This upload was cancelled; start a new one.")
    if upload.status == UploadStatus.EXPIRED or _is_stale(upload):
        raise UploadGone("This upload expired before it was finished; start a new one.")
    return upload


def get_upload_any(upload_id: uuid.UUID | str) -> Upload:
    """An upload of the current org in any state (404 when unknown), for status reads."""
    upload = Upload.objects.filter(pk=_parse_id(upload_id)).first()
    if upload is None:
        raise UploadNotFound("No such upload.")
    return upload


@org_task
def get_completed_upload(upload_id: uuid.UUID | str) -> Upload:
    """The complete upload with this id in the current org (what the importer reads).

    Raises `UploadNotFound` (also an `Upload.DoesNotExist`) when there is none in this org, and
    `UploadNotComplete` when it exists but has not finished (or expired, or was cancelled).
    """
    upload = Upload.objects.filter(pk=_parse_id(upload_id)).first()
    if upload is None:
        raise UploadNotFound("No such upload.")
    if upload.status != UploadStatus.COMPLETE:
        raise UploadNotComplete(
            f"The upload {upload.filename or upload.pk} is {upload.get_status_display().lower()}, not complete.",
            status=upload.status,
        )
    return upload


def _is_stale(upload: Upload, now: datetime | None = None) -> bool:
    return (
        upload.status == UploadStatus.UPLOADING
        and upload.expires_at is not None
        and upload.expires_at <= (now or timezone.now())
    )


# --- Writes --------------------------------------------------------------------------------------


@org_task
def upload_create(
    *,
    size: int,
    metadata: dict[str, str] | None = None,
    actor: User | AnonymousUser | None,
    purpose: str | None = None,
) -> Upload:
    """Start an upload of `size` bytes (refused above the limit) and create its empty part file."""
    if size < 0:
        raise UploadError("Upload-Length must be a non-negative integer.", header="Upload-Length")
    check_size(size)
    metadata = dict(metadata or {})
    filename = clean_filename(metadata.get("filename") or metadata.get("name") or "")
    purpose = (purpose if purpose is not None else metadata.get("purpose", "")).strip()
    if len(purpose) > 64 or (purpose and not re.fullmatch(r"[A-Za-z0-9_.:-]+", purpose)):
        raise UploadError("purpose must be at most 64 letters, digits or _ . : -", field="purpose")
    user = _actor(actor)
    schema = current_schema()
    with transaction.atomic():
        upload = Upload.objects.create(
            filename=filename,
            size=size,
            metadata=metadata,
            purpose=purpose,
            created_by=user,
            created_by_email=user.email if user else "",
            expires_at=timezone.now() + expiry_delta(),
        )
        path = part_path(upload, schema)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        record(action="upload.created", actor=user, org=current_org(), entity=upload, after=_snapshot(upload))
        if size == 0:  # nothing to send: an empty file is complete as soon as it exists
            upload.save(update_fields=_complete(upload, path, schema, hashlib.sha256()))
            record(action="upload.completed", actor=user, org=current_org(), entity=upload, after=_snapshot(upload))
    return upload


class _RunningHashes:
    """SHA-256 states of uploads in progress, kept in this process between their PATCHes.

    A file of many chunks would otherwise be read back and hashed whole on completion (seconds for a
    gigabyte, while the client waits for the last answer). An entry is used only when its offset
    equals the committed offset of the upload (same process, nothing missed); it is stored after the
    transaction commits. Any miss (another worker, a restart, an eviction) falls back to hashing the
    staged file, so correctness never depends on it.
    """

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self.entries: OrderedDict[tuple[str, uuid.UUID], tuple[int, Any]] = OrderedDict()
        self.lock = threading.Lock()

    def take(self, schema: str, pk: uuid.UUID, offset: int) -> Any | None:
        """A copy of the state covering exactly bytes [0, offset), or None."""
        if offset == 0:
            return hashlib.sha256()
        with self.lock:
            entry = self.entries.get((schema, pk))
        return entry[1].copy() if entry is not None and entry[0] == offset else None

    def put(self, schema: str, pk: uuid.UUID, offset: int, state: Any) -> None:
        with self.lock:
            self.entries[(schema, pk)] = (offset, state)
            self.entries.move_to_end((schema, pk))
            while len(self.entries) > self.capacity:
                self.entries.popitem(last=False)

    def drop(self, schema: str, pk: uuid.UUID) -> None:
        with self.lock:
            self.entries.pop((schema, pk), None)


running_hashes = _RunningHashes()


@dataclass
class _Received:
    count: int
    running_sha256: Any | None  # the SHA-256 state of bytes [0, offset + count) when it was known


@org_task
def upload_append(
    *,
    upload_id: uuid.UUID | str,
    offset: int,
    stream: IO[bytes],
    length: int,
    checksum: tuple[str, str] | None = None,
    actor: User | AnonymousUser | None = None,
) -> Upload:
    """Append one PATCH body of `length` bytes at `offset`; completes the upload when it is full.

    The row is locked (SELECT ... FOR UPDATE) for the whole append, so concurrent PATCHes on one
    upload run one after the other and the loser sees the new offset (409). Every check that can
    refuse the request runs before the first byte is read. A body cut short by the client is kept
    (tus resumes from what arrived) unless a checksum was sent: then the chunk is discarded.
    """
    pk = _parse_id(upload_id)
    schema = current_schema()
    gone: str | None = None  # raised after the transaction, so the expiry it records is committed
    with transaction.atomic():
        upload = Upload.objects.select_for_update().filter(pk=pk).first()
        if upload is None:
            raise UploadNotFound("No such upload.")
        if _is_stale(upload):
            _expire(upload, schema)
            gone = "This upload expired before it was finished; start a new one."
        elif upload.status in (UploadStatus.ABORTED, UploadStatus.EXPIRED):
            raise UploadGone(
                "This upload was cancelled; start a new one."
                if upload.status == UploadStatus.ABORTED
                else "This upload expired before it was finished; start a new one."
            )
        else:
            upload = _append_locked(upload, schema, offset, stream, length, checksum, actor)
            if upload.status == UploadStatus.EXPIRED:
                gone = "The received part of this upload was lost on the server; start a new one."
    if gone:
        raise UploadGone(gone)
    return upload


def _append_locked(
    upload: Upload,
    schema: str,
    offset: int,
    stream: IO[bytes],
    length: int,
    checksum: tuple[str, str] | None,
    actor: User | AnonymousUser | None,
) -> Upload:
    """Append under the row lock held by `upload_append`."""
    if offset != upload.offset:
        raise OffsetMismatch(
            f"Upload-Offset is {offset} but the server has {upload.offset} bytes of this upload; "
            "ask for the offset with HEAD and resume from there.",
            expected_offset=upload.offset,
            received_offset=offset,
        )
    if upload.status == UploadStatus.COMPLETE:
        if length == 0:
            return upload
        raise UploadConflict("This upload is already complete.")
    remaining = upload.size - upload.offset
    if length > remaining:
        raise UploadTooLarge(
            f"This chunk of {human_size(length)} goes past the end of the file "
            f"({human_size(remaining)} remain of the declared {human_size(upload.size)}).",
            remaining=remaining,
            chunk=length,
        )
    path = part_path(upload, schema)
    if upload.offset > 0 and (not path.exists() or path.stat().st_size < upload.offset):
        # The staged bytes are gone or shorter than recorded (disk trouble): padding them would corrupt
        # the file, so the upload ends here and the client starts again.
        _expire(upload, schema)
        return upload
    running = running_hashes.take(schema, upload.pk, upload.offset)
    received = _write_chunk(path, upload.offset, stream, length, checksum, running)
    if received.count == 0 and length > 0:
        return upload  # the client vanished before sending anything
    upload.offset += received.count
    upload.expires_at = timezone.now() + expiry_delta()
    fields = ["offset", "expires_at", "updated_at"]
    if upload.offset == upload.size:
        fields += _complete(upload, path, schema, received.running_sha256)
        running_hashes.drop(schema, upload.pk)
    elif received.running_sha256 is not None:
        pk, new_offset, state = upload.pk, upload.offset, received.running_sha256
        transaction.on_commit(lambda: running_hashes.put(schema, pk, new_offset, state))
    upload.save(update_fields=fields)
    if upload.status == UploadStatus.COMPLETE:
        record(
            action="upload.completed",
            actor=_actor(actor),
            org=current_org(),
            entity=upload,
            after=_snapshot(upload),
        )
    return upload


def _write_chunk(
    path: Path,
    offset: int,
    stream: IO[bytes],
    length: int,
    checksum: tuple[str, str] | None,
    whole_hash: Any | None,
) -> _Received:
    chunk_hash = hashlib.new(checksum[0]) if checksum else None
    hashes = [h for h in (chunk_hash, whole_hash) if h is not None]
    count = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    # Each digest has its own helper thread (a one-worker pool: it sees the blocks in order) that hashes the block the
    # socket read just returned, while this thread writes it and reads the next (hashlib, socket reads and file writes
    # release the GIL for blocks this size). The chunk is never read back: the chunk checksum (tuspy's sha1) and the
    # file's running SHA-256 are fed from the same in-memory block. At most HASH_DEPTH blocks wait per digest, so
    # memory stays flat whatever the chunk size.
    lanes = [ThreadPoolExecutor(1, "tus-hash") for _ in hashes]
    try:
        with path.open("r+b" if path.exists() else "w+b") as handle:
            handle.truncate(offset)  # drop bytes a dead request left past the committed offset
            handle.seek(offset)
            pending: deque[list[Future[None]]] = deque()
            flushed = offset  # bytes before this have been handed to the disk (writeback started)
            while count < length:
                try:
                    data = stream.read(min(READ_SIZE, length - count))
                except OSError:  # connection reset by the client: keep what arrived
                    data = b""
                if not data:
                    break
                if len(pending) >= HASH_DEPTH:
                    for future in pending.popleft():
                        future.result()
                pending.append([lane.submit(digest.update, data) for lane, digest in zip(lanes, hashes, strict=True)])
                handle.write(data)
                count += len(data)
                if offset + count - flushed >= WRITEBACK_BYTES:
                    flushed = _start_writeback(handle, flushed, offset + count)
            for futures in pending:
                for future in futures:
                    future.result()
            if checksum is not None and chunk_hash is not None:
                problem = None
                if count < length:
                    problem = f"The chunk arrived incomplete ({count} of {length} bytes); it was discarded."
                elif chunk_hash.hexdigest() != checksum[1]:
                    problem = f"The {checksum[0]} checksum of the chunk does not match; the chunk was discarded."
                if problem:
                    handle.truncate(offset)
                    raise ChecksumMismatch(problem, algorithm=checksum[0])
            handle.flush()
            os.fsync(handle.fileno())  # the offset we commit next must never exceed what is on disk
    finally:
        for lane in lanes:
            lane.shutdown(wait=True)
    return _Received(count=count, running_sha256=whole_hash)


def _start_writeback(handle: IO[bytes], start: int, end: int) -> int:
    """Ask the kernel to start writing [start, end) to disk now (Linux: POSIX_FADV_DONTNEED starts writeback of the
    range's dirty pages; it drops only pages already clean, and those just submitted are mostly still being written,
    so they stay cached), so the disk works while the rest of the chunk arrives and the fsync at the end waits for
    the tail only (16 MB written then fsynced cost ~15 ms of waiting per chunk). Returns `end`."""
    if _FADVISE_DONTNEED is not None:
        handle.flush()
        os.posix_fadvise(handle.fileno(), start, end - start, _FADVISE_DONTNEED)
    return end


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(HASH_READ_SIZE):
            digest.update(block)
    return digest.hexdigest()


def _complete(upload: Upload, path: Path, schema: str, running_sha256: Any | None) -> list[str]:
    """Hash the assembled file and move it into the org's storage; returns the changed fields."""
    if path.stat().st_size != upload.size:
        raise UploadError(f"the staged file has {path.stat().st_size} bytes, expected {upload.size}")
    upload.sha256 = running_sha256.hexdigest() if running_sha256 is not None else file_sha256(path)
    name = f"uploads/{upload.pk}/{upload.filename or 'upload.bin'}"
    upload.storage_name = store_part(path, name, schema)
    upload.status = UploadStatus.COMPLETE
    upload.completed_at = timezone.now()
    upload.expires_at = None
    return ["sha256", "storage_name", "status", "completed_at"]


def _expire(upload: Upload, schema: str) -> None:
    running_hashes.drop(schema, upload.pk)
    upload.status = UploadStatus.EXPIRED
    upload.save(update_fields=["status", "updated_at"])
    part_path(upload, schema).unlink(missing_ok=True)
    record(action="upload.expired", org=current_org(), entity=upload, after=_snapshot(upload))


@org_task
def upload_terminate(*, upload_id: uuid.UUID | str, actor: User | AnonymousUser | None) -> Upload:
    """tus termination: cancel an unfinished upload and delete its part file.

    A complete upload is refused (imports may refer to its file); expired or cancelled ones are gone.
    """
    pk = _parse_id(upload_id)
    schema = current_schema()
    with transaction.atomic():
        upload = Upload.objects.select_for_update().filter(pk=pk).first()
        if upload is None:
            raise UploadNotFound("No such upload.")
        if upload.status in (UploadStatus.ABORTED, UploadStatus.EXPIRED):
            raise UploadGone("This upload was already cancelled or expired.")
        if upload.status == UploadStatus.COMPLETE:
            raise UploadConflict("A complete upload cannot be cancelled; its file may be in use by an import.")
        before = _snapshot(upload)
        upload.status = UploadStatus.ABORTED
        upload.save(update_fields=["status", "updated_at"])
        record(
            action="upload.terminated",
            actor=_actor(actor),
            org=current_org(),
            entity=upload,
            before=before,
            after=_snapshot(upload),
        )
        path = part_path(upload, schema)
        running_hashes.drop(schema, upload.pk)
        transaction.on_commit(lambda: path.unlink(missing_ok=True))
    return upload


@org_task
def expire_stale_uploads(*, now: datetime | None = None, progress: Callable[[int, int], None] | None = None) -> dict:
    """Expire unfinished uploads past their `expires_at` and delete their part files; also remove
    part files that belong to no unfinished upload (left by a crash) once they are older than the
    expiry window. Uploads a PATCH is writing to right now (row locked) are left for the next run."""
    now = now or timezone.now()
    schema = current_schema()
    stale_ids = list(
        Upload.objects.filter(status=UploadStatus.UPLOADING, expires_at__lte=now).values_list("pk", flat=True)
    )
    expired = 0
    for index, pk in enumerate(stale_ids, start=1):
        with transaction.atomic():
            upload = (
                Upload.objects.select_for_update(skip_locked=True)
                .filter(pk=pk, status=UploadStatus.UPLOADING, expires_at__lte=now)
                .first()
            )
            if upload is not None:
                _expire(upload, schema)
                expired += 1
        if progress is not None:
            progress(index, len(stale_ids))
    orphans = _remove_orphan_parts(schema, now)
    return {"expired": expired, "orphan_parts_removed": orphans}


def _remove_orphan_parts(schema: str, now: datetime) -> int:
    directory = staging_dir(schema)
    if not directory.is_dir():
        return 0
    cutoff = (now - expiry_delta()).timestamp()
    candidates: dict[uuid.UUID, Path] = {}
    for entry in os.scandir(directory):
        if not entry.name.endswith(".part") or entry.stat().st_mtime > cutoff:
            continue
        try:
            candidates[uuid.UUID(entry.name.removesuffix(".part"))] = Path(entry.path)
        except ValueError:
            continue
    live = set(
        Upload.objects.filter(pk__in=list(candidates), status=UploadStatus.UPLOADING).values_list("pk", flat=True)
    )
    removed = 0
    for pk, path in candidates.items():
        if pk not in live:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def has_expiry_work(*, now: datetime | None = None) -> bool:
    """Whether the current org has anything for the expiry job (so idle orgs get no job rows)."""
    now = now or timezone.now()
    if Upload.objects.filter(status=UploadStatus.UPLOADING, expires_at__lte=now).exists():
        return True
    directory = staging_dir()
    if not directory.is_dir():
        return False
    cutoff = (now - expiry_delta()).timestamp()
    return any(entry.stat().st_mtime <= cutoff for entry in os.scandir(directory) if entry.name.endswith(".part"))
