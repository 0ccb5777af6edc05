"""The Trade Desk first-party data export (`POST /data/advertiser`, reference 2.1-2.2) and ICP seeds.

httpx following the Data API's OpenAPI shape (the `ttd-data` SDK would add a generated client and its own UID2
resolver; the wire format is small and our UID2s are already mapped): `{"AdvertiserId", "Items": [{"UID2",
"Data": [{"Name", "TtlInMinutes", "BaseBidCPM"}]}], "DataOrigins"}` with `TTD-Auth` (or `TtdSignature`, an
HMAC-SHA1 of the exact body, when only an advertiser secret is stored).

Per UID2 and segment we keep what TTD holds (`TtdMember`): sent with an expiry, refused (its FailedLine's code
and message), or removed (sent with TTL 0 when the member left). A member is re-sent before its TTL runs out.
A 413 splits the batch in two; a 429 waits `Retry-After`; 5xx retry with backoff; a batch that still fails
leaves its members untouched, so nothing half-sent is ever marked sent.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from django.conf import settings
from django.db import connection
from django.utils import timezone

from activation.exports import safe_part, segment_id
from activation.identities import uid2s_sql
from activation.models import Delivery, DeliveryStatus, Destination, IcpSeed, TtdMember, TtdMemberStatus
from activation.services import credentials
from activation.sources import audience_records_sql
from activation.uid2 import backoff
from tenants.services import ServiceError

logger = logging.getLogger(__name__)
SEED_MIN, SEED_MAX = 10_000, 50_000  # document 000: TTD seeds of 10K-50K ids
REFRESH_MARGIN = dt.timedelta(days=7)  # re-send members whose TTL ends within a week
NAME_MAX = 256


class TtdError(Exception):
    """The Data API refused the request or stayed unavailable; the message is for the user."""


@dataclass
class Line:
    uid2: str
    segment: str
    ttl: int  # minutes; 0 removes


@dataclass
class SendResult:
    accepted: list[Line] = field(default_factory=list)
    failed: list[tuple[Line, str, str]] = field(default_factory=list)
    requests: int = 0
    splits: int = 0


class TtdClient:
    def __init__(
        self, *, base_url: str, advertiser_id: str, auth_token: str = "", secret_key: str = "",
        base_bid_cpm: float = 1.15, max_retries: int = 5, sleep: Callable[[float], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:  # fmt: skip
        if not auth_token and not secret_key:
            raise TtdError("the TTD destination has no credentials (an auth token or an advertiser secret key)")
        self.url = base_url.rstrip("/") + "/data/advertiser"
        self.advertiser_id = advertiser_id
        self._token, self._secret = auth_token, secret_key
        self.base_bid_cpm = base_bid_cpm
        self.max_retries = max_retries
        self.sleep = sleep if sleep is not None else (lambda seconds: time.sleep(seconds))
        self.http = httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0), transport=transport)

    def __repr__(self) -> str:
        return f"TtdClient({self.url}, advertiser={self.advertiser_id})"

    def _body(self, lines: list[Line]) -> bytes:
        items = []
        for line in lines:
            data: dict[str, Any] = {"Name": line.segment, "TtlInMinutes": line.ttl}
            if line.ttl:
                data["BaseBidCPM"] = self.base_bid_cpm
            items.append({"UID2": line.uid2, "Data": [data]})
        payload = {
            "AdvertiserId": self.advertiser_id,
            "Items": items,
            "DataOrigins": [{"Type": "Integration", "Id": "p360"}],
        }
        return json.dumps(payload, separators=(",", ":")).encode()

    def _headers(self, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._token:
            headers["TTD-Auth"] = self._token
        else:
            digest = hmac.new(self._secret.encode(), body, hashlib.sha1).digest()
            headers["TtdSignature"] = base64.b64encode(digest).decode()
        return headers

    def send(self, lines: list[Line], result: SendResult | None = None) -> SendResult:
        """Send one batch (split on 413); accepted and refused lines are added to `result`."""
        result = result or SendResult()
        if not lines:
            return result
        body = self._body(lines)
        for attempt in range(1, self.max_retries + 2):
            result.requests += 1
            try:
                response = self.http.post(self.url, content=body, headers=self._headers(body))
            except httpx.TransportError as exc:
                if attempt > self.max_retries:
                    raise TtdError(f"the TTD Data API cannot be reached: {type(exc).__name__}") from None
                self.sleep(backoff(attempt, 1.0, 60.0))
                continue
            status = response.status_code
            if status == 413:
                if len(lines) == 1:
                    raise TtdError("TTD refused a single item as too large (HTTP 413)")
                result.splits += 1
                half = len(lines) // 2
                self.send(lines[:half], result)
                return self.send(lines[half:], result)
            if status in (429, 500, 502, 503, 504):
                if attempt > self.max_retries:
                    raise TtdError(f"the TTD Data API answered HTTP {status} after {attempt} attempts")
                retry_after = response.headers.get("Retry-After")
                try:
                    delay = float(retry_after) if retry_after else backoff(attempt, 1.0, 60.0)
                except ValueError:
                    delay = backoff(attempt, 1.0, 60.0)
                self.sleep(delay)
                continue
            if status != 200:
                raise TtdError(f"the TTD Data API refused the batch: HTTP {status} {response.text[:300]}")
            self._collect(lines, response, result)
            return result
        raise TtdError("unreachable")  # pragma: no cover

    @staticmethod
    def _collect(lines: list[Line], response: httpx.Response, result: SendResult) -> None:
        """Accepted and refused lines of a 200 answer. A FailedLine we cannot read or place (not an object, no
        usable ItemNumber) leaves the whole batch unconfirmed: never marked sent, each line keeps the reason."""
        try:
            body = response.json()
        except ValueError:
            body = None  # an empty 200: nothing refused
        # a 200 whose body is a bare string or list cannot confirm anything: the batch stays unconfirmed
        failed_lines = (body.get("FailedLines") or []) if isinstance(body, dict) else ([body] if body else [])
        if not isinstance(failed_lines, list):
            failed_lines = [failed_lines]
        failed: dict[int, tuple[str, str]] = {}
        for fl in failed_lines:
            if not isinstance(fl, dict):
                reason = ("UnreadableFailedLine", f"TTD answered a FailedLine that is not an object: {fl!r}"[:500])
                for i in range(len(lines)):
                    failed.setdefault(i, reason)
                continue
            code, message = str(fl.get("ErrorCode") or "Unknown"), str(fl.get("Message") or "")[:500]
            try:
                index = int(str(fl.get("ItemNumber") or "")) - 1  # ItemNumber is 1-based
            except ValueError:
                index = -1
            if 0 <= index < len(lines):
                failed[index] = (code, message)
            else:  # a FailedLine we cannot place: count the whole batch as unconfirmed
                for i in range(len(lines)):
                    failed.setdefault(i, (code, message))
        for i, line in enumerate(lines):
            if i in failed:
                result.failed.append((line, *failed[i]))
            else:
                result.accepted.append(line)


def client_for(destination: Destination, *, base_bid_cpm: float) -> TtdClient:
    creds = credentials(destination)
    return TtdClient(
        base_url=destination.base_url or settings.P360_TTD_BASE_URL,
        advertiser_id=destination.advertiser_id,
        auth_token=creds.get("auth_token", ""),
        secret_key=creds.get("secret_key", ""),
        base_bid_cpm=base_bid_cpm,
        max_retries=settings.P360_TTD_MAX_RETRIES,
    )


def current_uid2s(audience: Any) -> set[str]:
    source = audience_records_sql(audience)
    if source is None:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(uid2s_sql(source))
        return {row[0] for row in cursor.fetchall()}


def plan(destination: Destination, segment: str, members: set[str], ttl_minutes: int) -> tuple[list[Line], int, int]:
    """Lines to send for one segment: new or refused members, members whose TTL ends soon, and removals."""
    soon = timezone.now() + min(REFRESH_MARGIN, dt.timedelta(minutes=ttl_minutes) / 3)
    sent = {
        m.uid2: m
        for m in TtdMember.objects.filter(destination=destination, segment=segment, status=TtdMemberStatus.SENT)
    }
    lines, added = [], 0
    for uid2 in sorted(members):
        member = sent.get(uid2)
        if member is None:
            lines.append(Line(uid2, segment, ttl_minutes))
            added += 1
        elif member.expires_at is None or member.expires_at <= soon:
            lines.append(Line(uid2, segment, ttl_minutes))
    removed = [uid2 for uid2 in sorted(sent) if uid2 not in members]
    lines += [Line(uid2, segment, 0) for uid2 in removed]
    return lines, added, len(removed)


def earlier_names(destination: Destination, prefix: str, current: str) -> list[str]:
    """Segments this destination still holds members in under an earlier name of the same audience or seed.

    TTD's Data API knows a segment only by its `Name` and has no rename: a renamed audience would start a second
    segment while the first kept its members until their TTL ran out. So the stable part of the name (`P360_<id>_`,
    or the seed's audience) finds the earlier segments and their members are moved: sent under the new name and
    removed (TTL 0) from the old one."""
    return sorted(
        set(
            TtdMember.objects.filter(destination=destination, segment__startswith=prefix, status=TtdMemberStatus.SENT)
            .exclude(segment=current)
            .values_list("segment", flat=True)
        )
    )


def removal_lines(destination: Destination, segments: list[str], ttl_minutes: int) -> list[Line]:
    """TTL 0 for every member still sent under `segments` (the earlier names of a renamed segment)."""
    lines: list[Line] = []
    for old in segments:
        lines += plan(destination, old, set(), ttl_minutes)[0]
    return lines


def record_result(destination: Destination, result: SendResult, delivery_id: int | None) -> None:
    now = timezone.now()
    rows = []
    for line in result.accepted:
        rows.append(TtdMember(
            destination=destination, segment=line.segment, uid2=line.uid2,
            status=TtdMemberStatus.SENT if line.ttl else TtdMemberStatus.REMOVED, sent_at=now,
            expires_at=now + dt.timedelta(minutes=line.ttl) if line.ttl else now, error_code="", error_message="",
            delivery_id=delivery_id,
        ))  # fmt: skip
    for line, code, message in result.failed:
        rows.append(TtdMember(
            destination=destination, segment=line.segment, uid2=line.uid2, status=TtdMemberStatus.FAILED,
            sent_at=None, expires_at=None, error_code=code[:64], error_message=message, delivery_id=delivery_id,
        ))  # fmt: skip
    if rows:
        TtdMember.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["destination", "segment", "uid2"],
            update_fields=["status", "sent_at", "expires_at", "error_code", "error_message", "delivery_id"],
        )


def send_lines(client: TtdClient, destination: Destination, lines: list[Line], delivery_id: int | None,
               progress: Callable[[int, int], None] | None = None) -> SendResult:  # fmt: skip
    """Batches of P360_TTD_BATCH_SIZE; each batch's outcome is recorded as soon as TTD answered it."""
    total = SendResult()
    size = max(1, settings.P360_TTD_BATCH_SIZE)
    for start in range(0, len(lines), size):
        batch = client.send(lines[start : start + size])
        record_result(destination, batch, delivery_id)
        total.accepted += batch.accepted
        total.failed += batch.failed
        total.requests += batch.requests
        total.splits += batch.splits
        if progress is not None:
            progress(min(start + size, len(lines)), len(lines))
    return total


def deliver_ttd(d: Delivery, audiences: list[Any], cfg: Any, ctx: Any) -> dict[str, Any]:
    from activation.delivery import DeliveryFailed, _update, summary

    destination = d.destination
    ttl = int(cfg.ttd_ttl_days) * 1440
    lines: list[Line] = []
    added = removed = 0
    segments = []
    for audience in audiences:
        segment = segment_id(audience)[:NAME_MAX]
        segments.append(segment)
        members = current_uid2s(audience)
        seg_lines, seg_added, seg_removed = plan(destination, segment, members, ttl)
        lines += seg_lines
        added += seg_added
        removed += seg_removed
        old = earlier_names(destination, f"P360_{audience.pk}_", segment)
        if old:
            moved = removal_lines(destination, old, ttl)
            lines += moved
            ctx.log(f"audience {audience.pk} was renamed: {len(members)} member(s) sent as {segment}, "
                    f"{len(moved)} removed from {', '.join(old)}")  # fmt: skip
    files = [{"name": s, "rows": sum(1 for line in lines if line.segment == s and line.ttl), "sha256": ""}
             for s in segments]  # fmt: skip
    _update(d, added=added, removed=removed, files=files, rows=sum(1 for line in lines if line.ttl))
    if d.dry_run:
        _update(d, status=DeliveryStatus.DRY_RUN, finished_at=timezone.now())
        return summary(d)
    try:
        client = client_for(destination, base_bid_cpm=float(cfg.ttd_base_bid_cpm))
        result = send_lines(client, destination, lines, d.pk, progress=ctx.progress)
    except TtdError as exc:
        raise DeliveryFailed(str(exc)) from None
    receipt = {"requests": result.requests, "splits": result.splits, "accepted": len(result.accepted),
               "failed": len(result.failed)}  # fmt: skip
    status = DeliveryStatus.PARTIAL if result.failed else DeliveryStatus.SENT
    _update(d, status=status, receipt=receipt, failed_lines=len(result.failed), finished_at=timezone.now(),
            rows=sum(1 for line in result.accepted if line.ttl))  # fmt: skip
    ctx.log(f"TTD: {len(result.accepted)} lines accepted, {len(result.failed)} refused, {result.requests} requests")
    return summary(d)


# --- ICP seeds ---------------------------------------------------------------------------------------------
def seed_name(audience: Any) -> str:
    return f"ICP_Seed_{safe_part(audience.name, limit=200)}"[:NAME_MAX]


def seed_ids(audience: Any) -> set[str]:
    ids = current_uid2s(audience)
    if not SEED_MIN <= len(ids) <= SEED_MAX:
        raise ServiceError(
            f"an ICP seed needs {SEED_MIN:,} to {SEED_MAX:,} UID2s; audience {audience.name!r} has {len(ids):,}"
        )
    return ids


def export_seed(seed: IcpSeed, cfg: Any) -> dict[str, Any]:
    ids = seed_ids(seed.audience)
    ttl = int(cfg.ttd_ttl_days) * 1440
    name = seed_name(seed.audience)  # follows the audience's name; the members move with it (earlier_names)
    lines, added, removed = plan(seed.destination, name, ids, ttl)
    if name != seed.name:
        lines += removal_lines(seed.destination, [seed.name], ttl)
    client = client_for(seed.destination, base_bid_cpm=float(cfg.ttd_base_bid_cpm))
    try:
        result = send_lines(client, seed.destination, lines, None)
    except TtdError as exc:
        IcpSeed.objects.filter(pk=seed.pk).update(last_error=str(exc))
        raise ServiceError(str(exc)) from None
    IcpSeed.objects.filter(pk=seed.pk).update(name=name, ids=len(ids), last_exported_at=timezone.now(), last_error="")
    seed.name = name
    return {"seed": seed.name, "ids": len(ids), "added": added, "removed": removed,
            "accepted": len(result.accepted), "failed": len(result.failed)}  # fmt: skip


def refresh_seeds(ctx: Any) -> dict[str, Any]:
    from activation.services import config

    cfg = config()
    done, failed = 0, 0
    for seed in IcpSeed.objects.select_related("audience", "destination"):
        try:
            export_seed(seed, cfg)
            done += 1
        except ServiceError as exc:
            IcpSeed.objects.filter(pk=seed.pk).update(last_error=str(exc))
            ctx.log(f"{seed.name}: {exc}", "warning")
            failed += 1
    return {"refreshed": done, "failed": failed}
