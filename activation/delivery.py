"""Deliveries: build the files, diff them against the last successful delivery, stage, push, and write the
ledger row. A delivery runs as a Job (progress, attempts, the reaper re-runs it when its worker dies);
re-running a delivery is safe: a ledger row marked sent is never sent again, and files already complete on
the server are not uploaded twice (see activation.transport)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from django.conf import settings
from django.core.files import File
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from activation.exports import ExportRefused, ExportResult, FileInfo, export_files
from activation.models import Cadence, Delivery, DeliveryStatus, Destination, DestinationKind, PushMode
from activation.services import KEY_ONLY_REGIONS, config, credentials
from activation.sources import schema
from activation.transport import PartStreamer, SftpTarget, TransportError, push_s3, push_sftp, stage
from p360.core.audit.services import record
from p360.core.jobs.services import JobContext, job_run_inline, job_start
from tenants.selectors import current_org

if TYPE_CHECKING:
    from tenants.models import Organization, User

logger = logging.getLogger(__name__)
CADENCE_DAYS: dict[str, int] = {Cadence.DAILY: 1, Cadence.WEEKLY: 7, Cadence.MONTHLY: 30}


class DeliveryFailed(Exception):
    """The delivery could not be completed; the message is for the user (no credentials)."""


def start_delivery(
    *, destination: Destination, actor: User | None, dry_run: bool, org: Organization | None = None,
    inline: bool = False,
) -> Delivery:  # fmt: skip
    """Create the ledger row and run it: in this process (commands, dry runs) or on the task cluster."""
    org = org or current_org()
    email = actor.email if actor is not None and actor.is_authenticated else ""
    delivery = Delivery.objects.create(destination=destination, dry_run=dry_run, created_by_email=email)
    record(action="activation.delivery_started", actor=actor, org=org, entity=delivery,
           after={"destination": destination.name, "dry_run": dry_run})  # fmt: skip
    params = {"delivery_id": delivery.pk}
    if inline or dry_run:
        job_run_inline(kind="activation.deliver", org=org, actor=actor, params=params)
    else:
        job = job_start(kind="activation.deliver", org=org, actor=actor, params=params, max_attempts=3)
        Delivery.objects.filter(pk=delivery.pk).update(job_id=job.pk)
    delivery.refresh_from_db()
    return delivery


def summary(d: Delivery) -> dict[str, Any]:
    return {
        "delivery_id": d.pk,
        "destination": d.destination.name,
        "status": d.status,
        "dry_run": d.dry_run,
        "rows": d.rows,
        "added": d.added,
        "removed": d.removed,
        "diff_note": d.diff_note,
        "files": d.files,
        "skipped": d.skipped,
        "checksum": d.checksum,
        "attempts": d.attempts,
        "failed_lines": d.failed_lines,
        "error": d.error,
    }


def workdir(delivery: Delivery) -> Path:
    """The delivery's scratch folder. It names the database too: two databases sharing one data directory (the
    test workers, a staging copy) have deliveries with the same ids, and one's clean-up must not remove the
    other's files."""
    database = str(connection.settings_dict["NAME"])
    return Path(settings.DATA_DIR) / "deliveries" / database / schema() / str(delivery.pk)


def previous_sent(d: Delivery) -> Delivery | None:
    return (
        Delivery.objects.filter(destination_id=d.destination_id, status=DeliveryStatus.SENT, dry_run=False)
        .exclude(pk=d.pk)
        .order_by("-finished_at", "-pk")
        .first()
    )


def members_key(d: Delivery) -> str:
    return f"{settings.P360_DELIVERY_STAGING_PREFIX}/{d.pk}/members.parquet"


def save_members(d: Delivery, keys: pl.Series | None, storage: Any = None, work: Path | None = None) -> str:
    """Store the delivery's sorted member keys (64-bit, see activation.exports.member_keys) in the org's storage
    beside its staged files: the next delivery's diff reads them back (one file, no per-row table). Pass
    `storage` when called off the request thread (the org is resolved from the current schema).

    Uncompressed: the keys are hashes, zstd saved 7 % of the bytes for three times the CPU (0.3 s at 10M keys,
    on the delivery's last step). With `work` (the delivery's scratch folder) the file is written there and
    staged like the device files (a hard link on a local storage, no second copy)."""
    from p360.core.uploads.storage import org_storage

    if keys is None:
        return ""
    storage = storage if storage is not None else org_storage()
    frame = pl.DataFrame({"key": keys})
    key = members_key(d)
    if work is not None:
        path = work / "members.parquet"
        frame.write_parquet(path, compression="uncompressed")
        info = FileInfo(path.name, keys.len(), "", path.stat().st_size, path)
        return stage([info], key.rsplit("/", 1)[0], storage)[0]
    buf = io.BytesIO()
    frame.write_parquet(buf, compression="uncompressed")
    buf.seek(0)
    if storage.exists(key):
        storage.delete(key)
    return str(storage.save(key, File(buf, name="members.parquet")))


def load_members(d: Delivery) -> np.ndarray | None:
    """The sorted keys a delivery stored, or None (a delivery from before the member files, or pruned)."""
    from p360.core.uploads.storage import org_storage

    if not d.members_file:
        return None
    storage = org_storage()
    if not storage.exists(d.members_file):
        return None
    with storage.open(d.members_file, "rb") as fh:
        return pl.read_parquet(io.BytesIO(fh.read()))["key"].to_numpy()


def _missing(a: np.ndarray, b: np.ndarray) -> int:
    """How many of the sorted unique keys `a` are not in the sorted unique keys `b` (binary search, no set)."""
    if len(b) == 0 or len(a) == 0:
        return len(a)
    idx = np.minimum(np.searchsorted(b, a), len(b) - 1)
    return int(np.count_nonzero(b[idx] != a))


def diff_counts(keys: pl.Series | None, prev: Delivery | None) -> tuple[int | None, int | None, str]:
    """(added, removed, note) against the last successful delivery's member set. A first delivery adds every
    row. When that delivery kept no member set (sent before member files existed, or its file is gone), adds
    and removes are unknown (None) and the note says why: counting every row as added would tell the
    operator the whole audience is new."""
    current = keys.to_numpy() if keys is not None else np.empty(0, dtype=np.uint64)
    if prev is None:
        return len(current), 0, ""
    previous = load_members(prev)
    if previous is None:
        return None, None, (f"baseline unknown: delivery #{prev.pk} kept no member set, so adds and removes "
                            "cannot be counted (the next delivery will have this one's)")  # fmt: skip
    return _missing(current, previous), _missing(previous, current), ""


def diff_text(d: Delivery) -> str:
    """`+added / -removed`, or why they are unknown (admin messages, logs)."""
    if d.added is None or d.removed is None:
        return "adds/removes unknown (baseline unknown)"
    return f"+{d.added} / -{d.removed}"


def _checksum(files: list[dict[str, Any]]) -> str:
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f['name']}:{f['sha256']}\n".encode())
    return digest.hexdigest()


def _update(d: Delivery, **fields: Any) -> None:
    for key, value in fields.items():
        setattr(d, key, value)
    Delivery.objects.filter(pk=d.pk).update(**fields)


def run_delivery(delivery_id: int, ctx: JobContext) -> dict[str, Any]:
    d = Delivery.objects.select_related("destination").get(pk=delivery_id)
    if d.status in (DeliveryStatus.SENT, DeliveryStatus.DRY_RUN, DeliveryStatus.PARTIAL):
        ctx.log(f"delivery #{d.pk} is already {d.status}; nothing to do")
        return summary(d)
    Delivery.objects.filter(pk=d.pk).update(attempts=F("attempts") + 1)
    _update(d, status=DeliveryStatus.RUNNING, job_id=ctx.job.pk, started_at=timezone.now(), error="")
    d.refresh_from_db()
    destination = d.destination
    cfg = config()
    org = current_org()
    audiences = list(destination.audiences.order_by("pk"))
    d.audiences.set(audiences)  # what this delivery carried (the audience's lineage reads it)
    work = workdir(d)
    try:
        if not audiences:
            raise DeliveryFailed(f"destination {destination.name} has no audiences to deliver")
        if destination.kind == DestinationKind.TTD:
            from activation.ttd import deliver_ttd

            result = deliver_ttd(d, audiences, cfg, ctx)
        else:
            result = _deliver_files(d, audiences, cfg, ctx, work, org_name=org.name if org else "P360")
    except (ExportRefused, TransportError, DeliveryFailed) as exc:
        _fail(d, str(exc), cfg)
        raise DeliveryFailed(str(exc)) from None
    except Exception as exc:
        _fail(d, f"{type(exc).__name__}: {exc}", cfg)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _deliver_files(
    d: Delivery, audiences: list[Any], cfg: Any, ctx: JobContext, work: Path, *, org_name: str
) -> dict[str, Any]:
    shutil.rmtree(work, ignore_errors=True)
    today = timezone.localdate(d.created_at)  # a re-run on another day writes the same names
    ctx.progress(0, 4)
    streamer = None if d.dry_run else _streamer(d.destination)
    try:
        export: ExportResult = export_files(
            audiences=audiences, fmt="liveramp", out_dir=work, org_name=org_name, lookback_days=cfg.lookback_days,
            merged=cfg.push_mode == PushMode.MERGED, today=today, tag=f"-D{d.pk}", sink=streamer,
            compress=d.destination.compression == "gzip",
        )  # fmt: skip
        sending = export.files
        if d.destination.pgp_public_key and not d.dry_run:
            sending = _encrypt(d.destination, export.files, work)
            ctx.log(f"encrypted {len(sending)} file(s) with PGP key {d.destination.pgp_fingerprint}")
        files = [_file_row(sent, plain) for sent, plain in zip(sending, export.files, strict=True)]
        ctx.log(f"wrote {len(files)} file(s), {export.rows} rows")
        prev = previous_sent(d)
        added, removed, note = diff_counts(export.keys, prev)
        if note:
            ctx.log(note, "warning")
        _update(d, rows=export.rows, files=files, skipped=export.skipped, added=added, removed=removed,
                diff_note=note, checksum=_checksum(files))  # fmt: skip
        ctx.progress(1, 4)
        alerts = _shrink_alert(d, prev, cfg)
        if d.dry_run:
            _update(d, status=DeliveryStatus.DRY_RUN, finished_at=timezone.now(), alerts=alerts)
            return summary(d)
        ctx.progress(2, 4)
        receipt, staged, members_file = _stage_and_push(d, export, sending, streamer, work)
    except BaseException:
        if streamer is not None:
            streamer.abort()  # stops the pre-upload and removes the `.part` files it started
        raise
    _update(d, staged=staged, members_file=members_file)
    ctx.progress(3, 4)
    with transaction.atomic():
        _update(d, status=DeliveryStatus.SENT, receipt=receipt, finished_at=timezone.now(), alerts=alerts)
        _prune_members(d)  # keep only the member set the next diff needs
    ctx.progress(4, 4)
    ctx.log(f"delivered {export.rows} rows to {d.destination.name}: {diff_text(d)}")
    for alert in alerts:
        _send_alert(cfg, f"Delivery #{d.pk} to {d.destination.name}: {alert}")
    return summary(d)


def _encrypt(destination: Destination, files: list[FileInfo], work: Path) -> list[FileInfo]:
    """LiveRamp's PGP encryption (reference 3.1): each finished file, already named as LiveRamp should see it
    once decrypted, becomes `<name>.gpg`; the encrypted bytes are what is staged, sent and size-checked."""
    from activation.pgp import PgpError, encrypt_files

    try:
        return encrypt_files(files, armored=destination.pgp_public_key, subkey_id=destination.pgp_subkey_id,
                             out_dir=work)  # fmt: skip
    except PgpError as exc:
        raise DeliveryFailed(str(exc)) from None


def _file_row(sent: FileInfo, plain: FileInfo) -> dict[str, Any]:
    """The ledger's file entry: what went out (name, SHA-256, bytes) and, for an encrypted file, the plain file it
    holds, so the checksum on the remote and the content can both be traced."""
    row = sent.as_dict()
    if sent is not plain:
        row.update(plain_name=plain.name, plain_sha256=plain.sha256, plain_bytes=plain.bytes)
    return row


def _stage_and_push(
    d: Delivery, export: ExportResult, files: list[FileInfo], streamer: PartStreamer | None, work: Path
) -> tuple[dict[str, Any], list[str], str]:
    """Stage the files in the org's storage, store the member keys for the next diff and push, all at the same
    time (threads: the push and the copies are I/O, the key sort releases the GIL); the ledger row is marked
    sent only when all finished. A push that fails still waits for the others."""
    from p360.core.uploads.storage import org_storage

    storage = org_storage()  # resolved here: the org is this thread's schema
    prefix = f"{settings.P360_DELIVERY_STAGING_PREFIX}/{d.pk}"
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="delivery-stage") as pool:
        staging = pool.submit(stage, files, prefix, storage)
        members = pool.submit(save_members, d, export.keys, storage, work)
        try:
            receipt = _push(d.destination, files, streamer)
        finally:
            staged = staging.result()
            members_file = members.result()
    return receipt, staged, members_file


def _streamer(destination: Destination) -> PartStreamer | None:
    """An SFTP destination's pre-upload of the part files while they are written (see activation.transport).
    None for an encrypted destination: what is sent are the `.gpg` files made after the write."""
    if destination.kind not in (DestinationKind.LIVERAMP, DestinationKind.SFTP) or destination.pgp_public_key:
        return None
    return PartStreamer(_sftp_target(destination)).start()


def _prune_members(d: Delivery) -> None:
    """Keep only the member set the next diff needs (this delivery's)."""
    from p360.core.uploads.storage import org_storage

    storage = org_storage()
    older = (
        Delivery.objects.filter(destination_id=d.destination_id)
        .exclude(pk=d.pk)
        .exclude(members_file="")
        .exclude(status=DeliveryStatus.RUNNING)
    )
    for old in older:
        storage.delete(old.members_file)
        Delivery.objects.filter(pk=old.pk).update(members_file="")


def _sftp_target(destination: Destination) -> SftpTarget:
    creds = credentials(destination)
    return SftpTarget(
        host=destination.host, port=destination.port, username=destination.username,
        remote_dir=destination.remote_dir or "/", host_key=destination.host_key,
        password=creds.get("password", ""), private_key=creds.get("private_key", ""),
        key_only=destination.kind == DestinationKind.LIVERAMP and destination.region in KEY_ONLY_REGIONS,
    )  # fmt: skip


def _push(destination: Destination, files: list[FileInfo], streamer: PartStreamer | None = None) -> dict[str, Any]:
    if destination.kind in (DestinationKind.LIVERAMP, DestinationKind.SFTP):
        uploaded = streamer.complete(files) if streamer is not None else set()
        cut = streamer is not None and streamer.cut  # the stream's cut counts as a try
        return push_sftp(_sftp_target(destination), files, uploaded=uploaded, tried=int(cut))
    creds = credentials(destination)
    if destination.kind == DestinationKind.S3:
        return push_s3(
            bucket=destination.bucket, prefix=destination.prefix, endpoint_url=destination.endpoint_url,
            access_key_id=creds.get("access_key_id", ""), secret_access_key=creds.get("secret_access_key", ""),
            files=files,
        )  # fmt: skip
    raise DeliveryFailed(f"destination kind {destination.kind} does not take files")


def _shrink_alert(d: Delivery, prev: Delivery | None, cfg: Any) -> list[str]:
    if prev is None or not prev.rows:
        return []
    share = (prev.rows - d.rows) / prev.rows
    if share > float(cfg.shrink_alert_share):
        return [f"the delivery shrank by {share:.0%} ({prev.rows} -> {d.rows} rows), above the alert threshold "
                f"of {float(cfg.shrink_alert_share):.0%}"]  # fmt: skip
    return []


def _fail(d: Delivery, message: str, cfg: Any) -> None:
    alerts = [*d.alerts, f"failed: {message}"]
    _update(d, status=DeliveryStatus.FAILED, error=message[:5000], finished_at=timezone.now(), alerts=alerts)
    _send_alert(cfg, f"Delivery #{d.pk} to {d.destination.name} failed: {message}")


def _send_alert(cfg: Any, message: str) -> None:
    recipients = [e for e in (cfg.alert_emails or "").split(",") if e] + list(settings.P360_DELIVERY_ALERT_EMAILS)
    logger.warning("delivery alert: %s", message)
    if not recipients:
        return
    org = current_org()
    subject = f"[P360] {org.name if org else ''} delivery alert"
    try:
        send_mail(subject, message, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=False)
    except Exception:
        logger.exception("delivery alert could not be mailed")


def due_destinations() -> list[Destination]:
    """Enabled destinations whose cadence says a delivery is due (none running or pending)."""
    cfg = config()
    if not cfg.enabled:
        return []
    days = CADENCE_DAYS.get(cfg.cadence, 7)
    cutoff = timezone.now() - dt.timedelta(days=days) + dt.timedelta(hours=1)  # the daily check's jitter
    due = []
    for destination in Destination.objects.filter(enabled=True):
        busy = Delivery.objects.filter(
            destination=destination, status__in=[DeliveryStatus.PENDING, DeliveryStatus.RUNNING]
        ).exists()
        recent = Delivery.objects.filter(destination=destination, dry_run=False, created_at__gt=cutoff).filter(
            Q(status=DeliveryStatus.SENT) | Q(status=DeliveryStatus.PARTIAL)
        )
        if not busy and not recent.exists() and destination.audiences.exists():
            due.append(destination)
    return due


def next_delivery_at(destination: Destination) -> dt.datetime | None:
    cfg = config()
    if not cfg.enabled or not destination.enabled:
        return None
    last = (
        Delivery.objects.filter(destination=destination, dry_run=False, status=DeliveryStatus.SENT)
        .order_by("-finished_at")
        .first()
    )
    if last is None or last.finished_at is None:
        return timezone.now()
    return last.finished_at + dt.timedelta(days=CADENCE_DAYS.get(cfg.cadence, 7))
